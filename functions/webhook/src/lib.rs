//! The webhook function: delivers the end of a job to its `callback_url`.
//!
//! It consumes the `webhooks` queue, whose messages name a job (the record
//! is the truth). For each:
//! - a job that has not ended yet but runs under a live lease is looked at
//!   again once that lease is due ([`ANNOUNCE`](longrun_core::webhook) comes
//!   before the end is written); one neither ended nor held is dropped, as
//!   whoever ends it announces it again;
//! - an ended job whose delivery is settled (delivered, or failed for good)
//!   is dropped; one whose next try is not due yet is sent on, delayed;
//! - otherwise one try: the URL is checked again by the SSRF guard, its
//!   host resolved and every address checked, and a POST goes to the
//!   checked address ([`deliver::post`]: no second resolution, no
//!   redirects, short timeouts, the answer read at most 64 KiB), signed per
//!   Standard Webhooks with the owner's secrets. A 2xx delivers. Anything
//!   else is retried after `WEBHOOK_RETRY_SCHEDULE_SECONDS`; after the
//!   last try the message goes to the webhook dead-letter queue.
//!
//! Before a try, [`guards`] may make it wait, with no try used: while its
//! host's circuit breaker is open (tries in a row that got no answer), or
//! while its owner has `WEBHOOK_OWNER_IN_FLIGHT` POSTs in flight.
//!
//! The try and its outcome are written to the job's `callback` with a
//! condition on what was read, so two copies of a message record one try.
//! Delivery is at least once: a receiver de-duplicates by `webhook-id`.

pub mod deliver;
pub mod guards;

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use longrun_aws::AwsClients;
use longrun_core::api::{job_view, presign_results};
use longrun_core::ports::{JobMessage, JobQueue, JobStore, ObjectStore, QueueError, StoreError};
use longrun_core::record::Callback;
use longrun_core::time::{now_ms, rfc3339};
use longrun_core::webhook::signature::{
    signature_header, WebhookSecret, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP,
};
use longrun_core::webhook::target::{resolve_checked, CallbackUrl, TargetPolicy};
use longrun_core::webhook::{WEBHOOK_DEAD_LETTER_QUEUE, WEBHOOK_QUEUE};
use longrun_core::{Config, JobRecord, JobStatus};
use longrun_lambda::{batch_failures, SqsFunction};
use serde_json::json;
use tracing::Instrument;

use crate::deliver::DeliveryLimits;
use crate::guards::DeliveryGuards;

/// The longest SQS delay: a later try is reached in hops of this.
const MAX_DELAY_SECONDS: i64 = 900;
/// How long past its POST's own bound a try stays taken: the recording
/// write after it, and clock skew between webhook functions.
const IN_FLIGHT_MARGIN_MS: i64 = 5_000;

/// What the webhook function needs; built once per process.
#[derive(Clone)]
pub struct WebhookDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// The work queues.
    pub queue: Arc<dyn JobQueue>,
    /// Only to presign the result links in the payload.
    pub objects: Arc<dyn ObjectStore>,
    /// Bounds on one POST.
    pub limits: DeliveryLimits,
    /// This container's breakers per host and POSTs in flight per owner.
    pub guards: Arc<DeliveryGuards>,
}

impl WebhookDeps {
    /// The production wiring: DynamoDB, SQS, S3 for presigning.
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        WebhookDeps {
            store: clients.job_store(&config),
            queue: clients.job_queue(&config),
            objects: clients.object_store(&config),
            limits: DeliveryLimits::default(),
            guards: Arc::new(DeliveryGuards::new(config.webhook_owner_in_flight)),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl SqsFunction for WebhookDeps {
    async fn call(&self, event: SqsEvent, _context: &lambda_runtime::Context) -> SqsBatchResponse {
        handle(self, event).await
    }
}

/// Why a message could not be settled; it comes back after its visibility timeout.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The job record could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The next message (a later try, the dead-letter queue) could not be sent.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Handles one batch from the webhook queue, its messages at once (one
/// slow receiver does not hold up the others); a message that failed comes back.
pub async fn handle(deps: &WebhookDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut tries = tokio::task::JoinSet::new();
    let mut ids = std::collections::HashMap::new();
    for message in event.records {
        let deps = deps.clone();
        let message_id = message.message_id.clone().unwrap_or_default();
        let task = tries.spawn(async move { process(&deps, &message).await });
        ids.insert(task.id(), message_id);
    }
    let mut failed = Vec::new();
    while let Some(joined) = tries.join_next_with_id().await {
        let (task, error) = match joined {
            Ok((_, Ok(()))) => continue,
            Ok((task, Err(err))) => (task, err.to_string()),
            Err(join_error) => (join_error.id(), "the delivery panicked".to_owned()),
        };
        let message_id = ids.remove(&task).unwrap_or_default();
        tracing::error!(%message_id, %error, "webhook message not settled; it will come back");
        failed.push(message_id);
    }
    batch_failures(failed)
}

async fn process(deps: &WebhookDeps, message: &SqsMessage) -> Result<(), WebhookError> {
    let body = message.body.as_deref().unwrap_or("");
    let Ok(job_message) = serde_json::from_str::<JobMessage>(body) else {
        tracing::error!(body, "webhook message that names no job; dropped");
        return Ok(());
    };
    let span = tracing::info_span!("webhook", job_id = %job_message.job_id);
    async {
        let Some(job) = deps.store.get(&job_message.job_id).await? else {
            return Ok(());
        };
        let Some(stored) = job.callback.clone() else {
            return Ok(());
        };
        let now = now_ms();
        if !job.status.is_terminal() {
            return look_again_later(deps, &job, &job_message, now).await;
        }
        let state = stored.for_generation(job.generation);
        if state.settled() {
            tracing::info!("delivery already settled; duplicate message dropped");
            return Ok(());
        }
        if let Some(next) = state.next_attempt_at.filter(|&next| next > now + 500) {
            return send_later(deps, &job, next - now).await;
        }
        if let Some(until) = state.in_flight_until.filter(|&until| until > now) {
            tracing::info!("a try of this delivery is in flight; looking again after it");
            return send_later(deps, &job, until - now).await;
        }
        let host = guards::host_of(&state.url);
        let place = match deps.guards.admit(&host, &job.owner, now) {
            Ok(place) => place,
            Err(wait) => {
                tracing::info!(?wait, %host, "delivery waits, no try used");
                return send_later(deps, &job, wait.ms()).await;
            }
        };
        // Take the try before making it: of several copies of the
        // announcement (N cancels, a redelivery), one POSTs.
        let claimed = Callback {
            in_flight_until: Some(now + deps.limits.total_timeout.as_millis() as i64 + IN_FLIGHT_MARGIN_MS),
            ..state.clone()
        };
        if !deps.store.update_callback(&job.id, &stored, &claimed).await? {
            tracing::info!("another copy of this announcement took the try; leaving it to that one");
            return Ok(());
        }
        let outcome = attempt(deps, &job, &state.url, now).await;
        if outcome.posted {
            deps.guards.record(&host, outcome.status.is_some(), now_ms());
        }
        drop(place);
        let mut new = claimed.clone();
        new.in_flight_until = None;
        new.attempts += 1;
        new.last_attempt_at = Some(now);
        new.last_status = outcome.status;
        new.last_error = outcome.error.clone();
        new.next_attempt_at = None;
        let max_attempts = deps.config.webhook_max_attempts();
        if outcome.delivered() {
            new.delivered_at = Some(now);
            tracing::info!(status = ?outcome.status, attempt = new.attempts, "webhook delivered");
        } else if new.attempts >= max_attempts {
            // Dead-lettered before it is recorded: a crash between the two
            // sends it twice, never not at all.
            deps.queue
                .enqueue(WEBHOOK_DEAD_LETTER_QUEUE, &JobMessage::for_job(&job, now), 0)
                .await?;
            new.failed_at = Some(now);
            tracing::warn!(attempts = new.attempts, error = ?outcome.error, "webhook failed for good; dead-lettered");
        } else {
            let wait_s = deps.config.webhook_retry_schedule[(new.attempts - 1) as usize];
            new.next_attempt_at = Some(now + i64::from(wait_s) * 1000);
            tracing::warn!(attempt = new.attempts, error = ?outcome.error, status = ?outcome.status, wait_s, "webhook try failed; retrying later");
        }
        if !deps.store.update_callback(&job.id, &claimed, &new).await? {
            tracing::info!("another delivery of this job recorded first; leaving it to that one");
            return Ok(());
        }
        if let Some(next) = new.next_attempt_at {
            send_later(deps, &job, next - now).await?;
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// How long an announcement of an end that is not written yet, for a job
/// no live run holds, is looked at again: the writer may be slow (store
/// retries, throttling) or may have failed; after this, whoever ends the job
/// announces it again.
const ANNOUNCED_END_PATIENCE_MS: i64 = 60_000;

/// A job not ended yet. Its end was announced before being written: if a
/// run still holds it, the end may be on its way, so look again when its
/// lease is due; a job no run holds is looked at again every few seconds for
/// a minute after the announcement (its writer may be slow), then dropped
/// (whoever ends it announces again).
async fn look_again_later(
    deps: &WebhookDeps,
    job: &JobRecord,
    message: &JobMessage,
    now: i64,
) -> Result<(), WebhookError> {
    match job.lease_expires_at {
        Some(expires_at) if job.status == JobStatus::Running && expires_at >= now => {
            resend(deps, job, message.enqueued_at, expires_at - now + 1_000).await
        }
        _ if now - message.enqueued_at < ANNOUNCED_END_PATIENCE_MS => {
            resend(deps, job, message.enqueued_at, 5_000).await
        }
        _ => {
            tracing::info!(status = %job.status, "announced end not written; whoever ends the job announces it again");
            Ok(())
        }
    }
}

/// [`send_later`] keeping the announcement's time, so its patience is
/// counted from the announcement, not from each look.
async fn resend(deps: &WebhookDeps, job: &JobRecord, announced_at: i64, wait_ms: i64) -> Result<(), WebhookError> {
    let delay = ((wait_ms.max(0) + 999) / 1000).clamp(1, MAX_DELAY_SECONDS) as u32;
    let message = JobMessage {
        enqueued_at: announced_at,
        ..JobMessage::for_job(job, now_ms())
    };
    deps.queue.enqueue(WEBHOOK_QUEUE, &message, delay).await?;
    Ok(())
}

/// Sends the job's webhook message again, delayed `wait_ms` (in hops of at
/// most 15 minutes, SQS's longest delay).
async fn send_later(deps: &WebhookDeps, job: &JobRecord, wait_ms: i64) -> Result<(), WebhookError> {
    let delay = (wait_ms.max(0) + 999) / 1000;
    let delay = delay.clamp(1, MAX_DELAY_SECONDS) as u32;
    deps.queue
        .enqueue(WEBHOOK_QUEUE, &JobMessage::for_job(job, now_ms()), delay)
        .await?;
    Ok(())
}

/// How one try went.
#[derive(Debug, Default)]
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    /// Whether a POST was made (not refused before it); with no `status`, it got no answer.
    posted: bool,
}

impl Attempt {
    fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(error: impl Into<String>) -> Self {
        Attempt {
            status: None,
            error: Some(error.into()),
            posted: false,
        }
    }
}

/// The Standard Webhooks `webhook-id` of a job's end: the same on every
/// try, new for a redriven job's next end.
pub fn message_id(job: &JobRecord) -> String {
    format!("job_{}_{}", job.id.as_str().replace('-', ""), job.generation)
}

/// The body POSTed: `{type: "job.<status>", timestamp, data: <job view>}`.
pub async fn payload(deps: &WebhookDeps, job: &JobRecord, now: i64) -> Bytes {
    let results = presign_results(deps.objects.as_ref(), job, deps.config.result_url_ttl)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(error = %err, "could not presign the results; sent without links");
            Vec::new()
        });
    let body = json!({
        "type": format!("job.{}", job.status.as_str().to_ascii_lowercase()),
        "timestamp": rfc3339(now),
        "data": job_view(job, results),
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// One try: check the URL, resolve and check its host, sign, POST.
async fn attempt(deps: &WebhookDeps, job: &JobRecord, url: &str, now: i64) -> Attempt {
    let policy = TargetPolicy {
        allow_insecure: deps.config.webhook_allow_insecure_targets,
    };
    let target = match CallbackUrl::parse(url, &policy) {
        Ok(target) => target,
        Err(err) => return Attempt::failed(format!("refused: {err}")),
    };
    let addrs = match resolve_checked(&target, &policy).await {
        Ok(addrs) => addrs,
        Err(err) => return Attempt::failed(format!("refused: {err}")),
    };
    let secrets = match deps.store.webhook_secrets(&job.owner).await {
        Ok(Some(secrets)) => secrets,
        Ok(None) => return Attempt::failed("the owner has no webhook secret (POST /webhook-secret)"),
        Err(err) => return Attempt::failed(format!("could not read the webhook secret: {err}")),
    };
    let keys: Vec<WebhookSecret> = secrets
        .signing_at(now)
        .into_iter()
        .filter_map(|raw| WebhookSecret::parse(raw).ok())
        .collect();
    if keys.is_empty() {
        return Attempt::failed("the owner's webhook secret is unreadable; rotate it");
    }
    let body = payload(deps, job, now).await;
    let id = message_id(job);
    let timestamp = now / 1000;
    let signature = signature_header(&keys.iter().collect::<Vec<_>>(), &id, timestamp, &body);
    let headers = match [
        (HEADER_ID, id),
        (HEADER_TIMESTAMP, timestamp.to_string()),
        (HEADER_SIGNATURE, signature),
    ]
    .into_iter()
    .map(|(name, value)| Ok((HeaderName::from_static(name), HeaderValue::from_str(&value)?)))
    .collect::<Result<Vec<_>, http::header::InvalidHeaderValue>>()
    {
        Ok(headers) => headers,
        Err(err) => return Attempt::failed(format!("could not build the headers: {err}")),
    };
    // The first checked address; every one of them passed the guard.
    let addr = addrs[0];
    match deliver::post(&target, addr, &headers, body, &deps.limits).await {
        Ok(response) => Attempt {
            status: Some(response.status.as_u16()),
            error: (!response.status.is_success()).then(|| format!("answered {}", response.status.as_u16())),
            posted: true,
        },
        Err(err) => Attempt {
            posted: true,
            ..Attempt::failed(err.to_string())
        },
    }
}

#[cfg(test)]
mod tests;
