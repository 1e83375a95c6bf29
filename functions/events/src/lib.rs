//! The events function: `GET /jobs/{id}/events?ticket=…` answers
//! `text/event-stream`, one event per change of the job (status, progress,
//! message, cancel request) and a last event with its terminal view, then
//! the stream ends.
//!
//! - **Who may open it.** A browser's `EventSource` cannot send an
//!   `Authorization` header, and a Lambda function URL (the only AWS front
//!   door that streams besides a REST API) has no JWT authorizer. So the
//!   authenticated API hands the job's owner a stream URL
//!   (`POST /jobs/{id}/stream`) carrying a random ticket; only its hash is
//!   stored, it names one job, and it expires (`STREAM_TICKET_TTL_SECONDS`).
//!   Anything else is `401`.
//! - **Events.** `id` is when the state changed (the record's `updated_at`,
//!   epoch ms: heartbeats and webhook bookkeeping do not move it, so a
//!   reconnect is not sent an unchanged state again), `event: job` for a change,
//!   `event: end` (with `id: end`) for the terminal view. A reconnect sends
//!   `Last-Event-ID` (or `?lastEventId=`): only a newer state is sent, and
//!   after `end` the answer is `204`, which tells `EventSource` to stop.
//! - **Capped.** An owner holds at most `MAX_STREAMS_PER_OWNER` streams open
//!   at once, and one URL `MAX_STREAMS_PER_TICKET`; past either the answer is
//!   `429 too-many-streams` with `Retry-After`. A stream gives its place
//!   back when it ends; one whose function died stops counting once its
//!   time cap has passed.
//! - **Bounded.** A comment every 15 s keeps proxies from closing an idle
//!   stream; after `STREAM_MAX_SECONDS` the stream ends with a `retry`
//!   hint and the client reconnects (a stream holds a Lambda the whole
//!   time). The job is read every `STREAM_POLL_MS` (eventually
//!   consistent), less often for a large record ([`poll_interval`]).
//!
//! [`open`] is a plain function over the store: the Lambda `main` turns its
//! answer into a streamed response, the local runtime into an HTTP body.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use longrun_aws::AwsClients;
use longrun_core::api::{job_view, presign_results, Problem};
use longrun_core::ports::{JobStore, ObjectStore, StreamTicket};
use longrun_core::streams::{ticket_tag, OpenStream, StreamAdmission};
use longrun_core::time::now_ms;
use longrun_core::{Config, JobId, JobRecord};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tracing::Instrument;

/// How often a comment goes out on an otherwise idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What a client should wait before reconnecting, milliseconds (`retry:`).
pub const RECONNECT_AFTER_MS: u64 = 1_000;
/// The `id` of the last event of a job's stream.
pub const END_EVENT_ID: &str = "end";
/// The longest wait between two reads of a stream's job, however large.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// How often a stream reads a job whose record is about `record_bytes`:
/// every `base` (`STREAM_POLL_MS`) for a record of up to 4 KB, and as much
/// less often as the record is larger (a read costs 0.5 RCU per 4 KB), up
/// to [`MAX_POLL_INTERVAL`]: a stream costs about 0.5 RCU per `base` unless
/// its job's record is over 40 KB or so.
pub fn poll_interval(base: Duration, record_bytes: usize) -> Duration {
    let units = record_bytes.div_ceil(4096).max(1) as u32;
    base.saturating_mul(units).clamp(base, MAX_POLL_INTERVAL.max(base))
}

/// The length of `value` as JSON.
fn json_bytes(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

/// About how many bytes `job`'s item holds, given its input's
/// `input_bytes` (measured once: an input never changes): the input, its
/// checkpoint and results as JSON, and 1 KB for the rest.
fn approximate_record_bytes(input_bytes: usize, job: &JobRecord) -> usize {
    input_bytes + job.checkpoint.as_ref().map_or(0, json_bytes) + json_bytes(&job.results) + 1024
}

/// What the events function needs; built once per process.
#[derive(Clone)]
pub struct EventsDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// Only to presign the result links of the terminal view.
    pub objects: Arc<dyn ObjectStore>,
}

impl EventsDeps {
    /// The production wiring: DynamoDB, and S3 for presigning.
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        EventsDeps {
            store: clients.job_store(&config),
            objects: clients.object_store(&config),
            config,
        }
    }
}

/// A response body of bytes as they come.
pub type EventBody = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>;

/// An answer: status, headers and a body that may still be streaming.
pub struct EventStream {
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body: a fixed text, or the stream of events.
    pub body: EventBody,
}

impl EventStream {
    fn problem(problem: &Problem) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = problem.retry_after {
            headers.insert("retry-after", HeaderValue::from(seconds));
        }
        let text = serde_json::to_vec(problem).unwrap_or_default();
        EventStream {
            status: StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers,
            body: Box::pin(tokio_stream::once(Ok(Bytes::from(text)))),
        }
    }

    fn no_content() -> Self {
        EventStream {
            status: StatusCode::NO_CONTENT,
            headers: HeaderMap::new(),
            body: Box::pin(tokio_stream::empty()),
        }
    }
}

/// Where a reconnecting client left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastEvent {
    /// A fresh stream: send the current state first.
    None,
    /// It saw the state that changed at this time (an event's `id`).
    At(i64),
    /// It saw the end.
    End,
}

impl LastEvent {
    /// `Last-Event-ID` (or `?lastEventId=`) as sent; anything unreadable
    /// counts as a fresh stream.
    pub fn parse(raw: Option<&str>) -> Self {
        match raw.map(str::trim) {
            Some(END_EVENT_ID) => LastEvent::End,
            Some(raw) => raw.parse().map(LastEvent::At).unwrap_or(LastEvent::None),
            None => LastEvent::None,
        }
    }
}

/// One server-sent event: `id`, `event`, and the data on one line.
pub fn frame(id: &str, event: &str, data: &str) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: {event}\ndata: {data}\n\n"))
}

/// Opens the stream `request` asks for (see the module docs).
pub async fn open(deps: &EventsDeps, request: &ApiGatewayV2httpRequest) -> EventStream {
    let path = request
        .raw_path
        .as_deref()
        .or(request.request_context.http.path.as_deref())
        .unwrap_or("");
    let raw_id = path
        .strip_prefix("/jobs/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .unwrap_or("");
    let span = tracing::info_span!("events", job_id = %raw_id);
    async {
        match check(deps, request, raw_id).await {
            Ok((_, LastEvent::End, _)) => EventStream::no_content(),
            Ok((job, last, ticket)) => match take_place(deps, &job, &ticket).await {
                Ok(place) => stream(deps, job, last, place).await,
                Err(problem) => {
                    tracing::info!(status = problem.status, detail = %problem.detail, "stream refused");
                    EventStream::problem(&problem)
                }
            },
            Err(problem) => {
                tracing::info!(status = problem.status, detail = %problem.detail, "stream refused");
                EventStream::problem(&problem)
            }
        }
    }
    .instrument(span)
    .await
}

/// The job the ticket opens, where the client left off and the ticket, or why not.
async fn check(
    deps: &EventsDeps,
    request: &ApiGatewayV2httpRequest,
    raw_id: &str,
) -> Result<(JobRecord, LastEvent, StreamTicket), Problem> {
    let refused = || {
        Problem::unauthorized("open the stream with the URL that POST /jobs/{id}/stream answers (its ticket expires)")
    };
    let id = JobId::parse(raw_id).ok_or_else(|| Problem::not_found(format!("no job {raw_id:?}")))?;
    let token = request.query_string_parameters.first("ticket").ok_or_else(refused)?;
    let ticket = deps
        .store
        .stream_ticket(&StreamTicket::hash_token(token), now_ms())
        .await?
        .filter(|t| t.job_id == id)
        .ok_or_else(refused)?;
    let job = deps
        .store
        .get(&id)
        .await?
        .filter(|job| job.owner == ticket.owner)
        .ok_or_else(|| Problem::not_found(format!("no job {raw_id:?}")))?;
    let last = request
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.query_string_parameters.first("lastEventId"));
    Ok((job, LastEvent::parse(last), ticket))
}

/// A stream's place among its owner's open streams.
struct Place {
    owner: String,
    id: String,
}

/// Takes a place for a new stream of `job` opened with `ticket`, or the
/// `429` that says which cap is reached.
async fn take_place(deps: &EventsDeps, job: &JobRecord, ticket: &StreamTicket) -> Result<Place, Problem> {
    let now = now_ms();
    let id = uuid::Uuid::new_v4().simple().to_string();
    // Counted until the stream's own cap, and a minute more (the function's timeout).
    let open = OpenStream {
        ticket: ticket_tag(&ticket.token_hash),
        expires_at: now + deps.config.stream_max_seconds as i64 * 1000 + 60_000,
    };
    let limits = deps.config.stream_limits;
    let retry_after = 30;
    match deps.store.open_stream(&job.owner, &id, &open, now, limits).await? {
        StreamAdmission::Admitted(_) => Ok(Place {
            owner: job.owner.clone(),
            id,
        }),
        StreamAdmission::OwnerFull { .. } => Err(Problem::too_many_streams(
            "for this caller",
            limits.per_owner,
            retry_after,
        )),
        StreamAdmission::TicketFull { .. } => Err(Problem::too_many_streams(
            "with this URL",
            limits.per_ticket,
            retry_after,
        )),
    }
}

async fn stream(deps: &EventsDeps, job: JobRecord, last: LastEvent, place: Place) -> EventStream {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    let (tx, rx) = mpsc::channel(16);
    let deps = deps.clone();
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            pump(deps.clone(), job, last, tx).await;
            // Its place back for the next stream (or, failing that, once its time is over).
            if let Err(err) = deps.store.close_stream(&place.owner, &place.id).await {
                tracing::warn!(error = %err, "could not give the stream's place back; it lapses with its time cap");
            }
        }
        .instrument(span),
    );
    EventStream {
        status: StatusCode::OK,
        headers,
        body: Box::pin(ReceiverStream::new(rx)),
    }
}

/// Writes the job's events until it ends, the stream's time is up, the
/// client goes away (the send fails), or the store fails.
async fn pump(deps: EventsDeps, mut job: JobRecord, last: LastEvent, tx: mpsc::Sender<Result<Bytes, Infallible>>) {
    let send = |bytes: Bytes| {
        let tx = tx.clone();
        async move { tx.send(Ok(bytes)).await.is_ok() }
    };
    if !send(Bytes::from(format!("retry: {RECONNECT_AFTER_MS}\n\n"))).await {
        return;
    }
    let started = tokio::time::Instant::now();
    let input_bytes = json_bytes(&job.input);
    let give_up_at = started + Duration::from_secs(deps.config.stream_max_seconds);
    let mut last_keep_alive = started;
    let mut shown = match last {
        LastEvent::At(seen) if job.updated_at <= seen => Some(job.updated_at),
        _ => None,
    };
    loop {
        if job.status.is_terminal() {
            let results = presign_results(deps.objects.as_ref(), &job, deps.config.result_url_ttl)
                .await
                .unwrap_or_default();
            let view = serde_json::to_string(&job_view(&job, results)).unwrap_or_default();
            send(frame(END_EVENT_ID, "end", &view)).await;
            tracing::info!(status = %job.status, "stream ended with the job");
            return;
        }
        if shown != Some(job.updated_at) {
            let view = serde_json::to_string(&job_view(&job, Vec::new())).unwrap_or_default();
            if !send(frame(&job.updated_at.to_string(), "job", &view)).await {
                return;
            }
            shown = Some(job.updated_at);
        }
        let now = tokio::time::Instant::now();
        let interval = poll_interval(deps.config.stream_poll, approximate_record_bytes(input_bytes, &job));
        if now + interval > give_up_at {
            // Time is up: the client reconnects with its Last-Event-ID.
            tracing::info!("stream reached STREAM_MAX_SECONDS; the client reconnects");
            return;
        }
        if now.duration_since(last_keep_alive) >= KEEP_ALIVE {
            if !send(Bytes::from_static(b": keep-alive\n\n")).await {
                return;
            }
            last_keep_alive = now;
        }
        tokio::time::sleep(interval).await;
        if tx.is_closed() {
            return;
        }
        job = match deps.store.get_eventually(&job.id).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the job; the stream ends and the client reconnects");
                return;
            }
        };
    }
}

#[cfg(test)]
mod tests;

/// Serves the events function URL (`RESPONSE_STREAM` mode) until the Lambda
/// runtime stops it: each request's events streamed as they happen, with
/// the configuration and clients built once.
pub async fn run_stream() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{service_fn, LambdaEvent, MetadataPrelude, StreamResponse};

    longrun_core::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let deps = Arc::new(EventsDeps::from_aws(config, &longrun_aws::AwsClients::for_lambda()?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let deps = deps.clone();
        async move {
            let stream = open(&deps, &event.payload).await;
            Ok::<_, lambda_runtime::Error>(StreamResponse {
                metadata_prelude: MetadataPrelude {
                    status_code: stream.status,
                    headers: stream.headers,
                    ..Default::default()
                },
                stream: stream.body,
            })
        }
    }))
    .await
}
