//! `longrun-admin ui`: the dashboard, a small web server on loopback
//! against the same stack as every other command (AWS or a local runtime).
//! Pages are rendered on the server ([`pages`]); the job page follows its
//! job live through `/jobs/{id}/events` (server-sent events this server
//! makes from the table). Operator actions (redrive, cancel) say what they
//! do on a page of their own and are done only by its form's `POST`, which
//! must carry this process's random token (a page of another site cannot
//! know it); requests whose `Host` is not this loopback address are
//! refused (DNS rebinding).

mod mine;
mod pages;

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use longrun_aws::AwsClients;
use longrun_core::ports::{JobQueue, JobStore, ObjectStore};
use longrun_core::time::now_ms;
use longrun_core::{JobId, JobStatus};
use serde::Deserialize;

use crate::stack::Stack;
use crate::{dlq, jobs, queues};

/// What every handler reads.
pub(crate) struct Ui {
    stack: Stack,
    clients: AwsClients,
    store: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    objects: Arc<dyn ObjectStore>,
    /// Random per process: every action's form carries it.
    token: String,
    /// The `Host` requests must name.
    host: String,
}

pub(crate) type Shared = State<Arc<Ui>>;

/// Serves the dashboard on `127.0.0.1:port` until the process is stopped.
pub(crate) async fn serve(stack: Stack, clients: AwsClients, port: u16) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("longrun-admin ui: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let ui = Arc::new(Ui {
        store: clients.job_store(&stack.config),
        queue: clients.job_queue(&stack.config),
        objects: clients.object_store(&stack.config),
        clients,
        stack,
        token: uuid::Uuid::new_v4().simple().to_string(),
        host: address.clone(),
    });
    println!("longrun-admin ui: http://{address}/ ({})", ui.stack.source);
    let app = Router::new()
        .route("/", get(overview))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/redrive", get(confirm_redrive).post(redrive))
        .route("/jobs", get(job_list))
        .route("/jobs/{id}", get(job_page))
        .route("/jobs/{id}/events", get(job_events))
        .route("/jobs/{id}/cancel", get(confirm_cancel).post(cancel))
        .route("/mine", get(mine::form).post(mine::list))
        .layer(axum::middleware::from_fn_with_state(ui.clone(), loopback_only))
        .with_state(ui);
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("longrun-admin ui: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses a request whose `Host` is not this server's loopback address
/// (DNS rebinding), one a browser says comes from another site
/// (`Sec-Fetch-Site`: an `<img>` or a form elsewhere), and a `POST` whose
/// `Origin` is not this dashboard.
async fn loopback_only(State(ui): Shared, request: Request, next: Next) -> Response {
    if from_this_dashboard(&ui.host, request.headers(), request.method()) {
        next.run(request).await
    } else {
        (StatusCode::FORBIDDEN, "not a request from this dashboard").into_response()
    }
}

/// Whether a request with `headers` and `method` may reach the dashboard at `address`.
fn from_this_dashboard(address: &str, headers: &axum::http::HeaderMap, method: &axum::http::Method) -> bool {
    let text = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    let port = address.rsplit(':').next().unwrap_or_default();
    let hosts = [address.to_owned(), format!("localhost:{port}")];
    let host_ok = text("host").is_some_and(|h| hosts.iter().any(|a| a == h));
    let site_ok = !matches!(text("sec-fetch-site"), Some("cross-site" | "same-site"));
    let origin_ok = method != axum::http::Method::POST
        || text("origin").is_none_or(|o| hosts.iter().any(|h| o == format!("http://{h}")));
    host_ok && site_ok && origin_ok
}

pub(crate) fn html(title: &str, ui: &Ui, body: &str) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // No other site may frame an action's page (clickjacking).
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        ],
        Html(pages::page(title, &ui.stack.source, body)),
    )
        .into_response()
}

pub(crate) fn problem(status: StatusCode, ui: &Ui, message: &str) -> Response {
    let mut answer = html("problem", ui, &format!("<p class=bad>{}</p>", pages::escape(message)));
    *answer.status_mut() = status;
    answer
}

async fn overview(State(ui): Shared) -> Response {
    let states = queues::survey(&ui.clients.sqs, &ui.stack.queues).await;
    let oldest = match queues::sample_due(&ui.clients.dynamodb, &ui.stack.config.jobs_table, 20).await {
        Ok(sampled) => queues::oldest_per_queue(&sampled, now_ms()),
        Err(_) => Default::default(),
    };
    html("queues", &ui, &pages::queues(&states, &oldest))
}

async fn dead_letters(State(ui): Shared) -> Response {
    let states = queues::survey(&ui.clients.sqs, &ui.stack.queues).await;
    let mut found = Vec::new();
    for state in states
        .iter()
        .filter(|s| s.kind == queues::Kind::DeadLetter && s.error.is_none())
    {
        let (received, warnings) = dlq::peek(&ui.clients.sqs, &state.queue.url, 50).await;
        for warning in warnings {
            found.push((format!("{}: {warning}", state.queue.label()), Vec::new()));
        }
        let mut entries = Vec::new();
        for message in received {
            entries.push(dlq::entry(ui.store.as_ref(), message, now_ms()).await);
        }
        found.push((state.queue.label().to_owned(), entries));
    }
    html("dead letters", &ui, &pages::dead_letters(&found))
}

#[derive(Deserialize)]
struct JobParam {
    job: String,
}

#[derive(Deserialize)]
struct Action {
    job: String,
    token: String,
}

async fn confirm_redrive(State(ui): Shared, Query(q): Query<JobParam>) -> Response {
    let what = format!(
        "Redrive job {}: it goes back to QUEUED as a fresh run in a new generation (no attempts counted, \
         its checkpoint kept) and is sent to its queue again.",
        q.job
    );
    let body = pages::confirm(
        &what,
        "/dead-letters/redrive",
        &[("job", &q.job), ("token", &ui.token)],
        "redrive",
    );
    html("redrive?", &ui, &body)
}

async fn redrive(State(ui): Shared, Form(action): Form<Action>) -> Response {
    if action.token != ui.token {
        return problem(StatusCode::FORBIDDEN, &ui, "this form is not from this dashboard");
    }
    use crate::NotRedriven;
    match crate::redrive(ui.store.as_ref(), ui.queue.as_ref(), &ui.stack.config, &action.job).await {
        Ok(_) => Redirect::to(&format!("/jobs/{}", action.job)).into_response(),
        Err(refusal) => {
            let status = match refusal {
                NotRedriven::NotAnId => StatusCode::BAD_REQUEST,
                NotRedriven::NoSuchJob => StatusCode::NOT_FOUND,
                NotRedriven::NotDeadLettered(_) => StatusCode::CONFLICT,
                NotRedriven::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            problem(status, &ui, &format!("{}: {refusal}", action.job))
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    owner: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    id: Option<String>,
    cursor: Option<String>,
    /// Items to read for this page (at most [`READ_PER_PAGE`]).
    read: Option<usize>,
}

/// Items one jobs page reads at most: its answer stays quick on a table of
/// any size, and a link goes on to the next part.
const READ_PER_PAGE: usize = 5_000;

async fn job_list(State(ui): Shared, Query(q): Query<ListParams>) -> Response {
    if let Some(id) = q.id.as_deref().map(str::trim).filter(|id| !id.is_empty()) {
        return match JobId::parse(id) {
            Some(id) => Redirect::to(&format!("/jobs/{id}")).into_response(),
            None => problem(StatusCode::NOT_FOUND, &ui, &format!("{id} is not a job id")),
        };
    }
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => match JobStatus::parse(&raw.to_ascii_uppercase()) {
            Some(status) => Some(status),
            None => return problem(StatusCode::BAD_REQUEST, &ui, &format!("no status {raw}")),
        },
    };
    let from = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => match jobs::Cursor::parse(raw) {
            Some(cursor) => Some(cursor),
            None => return problem(StatusCode::BAD_REQUEST, &ui, "not a cursor of this dashboard"),
        },
    };
    let text = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (owner, job_type) = (text(&q.owner), text(&q.job_type));
    let filter = jobs::Filter {
        owner: owner.as_deref(),
        status,
        job_type: job_type.as_deref(),
    };
    let budget = q.read.unwrap_or(READ_PER_PAGE).clamp(1, READ_PER_PAGE);
    let started = from.is_some();
    let table = &ui.stack.config.jobs_table;
    match jobs::tally(&ui.clients.dynamodb, table, &filter, 50, from, Some(budget)).await {
        Ok(tally) => html("jobs", &ui, &pages::jobs(&tally, &filter, started, q.read)),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, &ui, &e),
    }
}

async fn read_job(ui: &Ui, id: &str) -> Result<longrun_core::JobRecord, Response> {
    let missing = || problem(StatusCode::NOT_FOUND, ui, &format!("no job {id}"));
    let parsed = JobId::parse(id).ok_or_else(missing)?;
    match ui.store.get(&parsed).await {
        Ok(Some(job)) => Ok(job),
        Ok(None) => Err(missing()),
        Err(e) => Err(problem(StatusCode::SERVICE_UNAVAILABLE, ui, &e.to_string())),
    }
}

async fn job_page(State(ui): Shared, Path(id): Path<String>) -> Response {
    match read_job(&ui, &id).await {
        Ok(job) => html(&format!("job {id}"), &ui, &pages::job(&job)),
        Err(answer) => answer,
    }
}

/// The job's state as its page shows it; the results presigned once it ended.
async fn state_of(ui: &Ui, job: &longrun_core::JobRecord) -> serde_json::Value {
    let mut results = Vec::new();
    if job.status == JobStatus::Succeeded {
        for result in &job.results {
            if let Ok(url) = ui.objects.presign_get(&result.key, Duration::from_secs(900)).await {
                results.push(serde_json::json!({"name": result.name, "url": url}));
            }
        }
    }
    serde_json::json!({"status": job.status.as_str(), "progress": job.progress,
                       "message": job.progress_message, "results": results})
}

/// Server-sent events of one job: `job` at every change (read every half
/// second), then `end` once it ended, and the stream ends.
async fn job_events(State(ui): Shared, Path(id): Path<String>) -> Response {
    // A job that is not there is 404: an EventSource stops on it.
    let id = match read_job(&ui, &id).await {
        Ok(job) => job.id,
        Err(answer) => return answer,
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(4);
    tokio::spawn(async move {
        let mut last = None;
        loop {
            // Half the cost of a consistent read, a second late at most.
            let job = match ui.store.get_eventually(&id).await {
                Ok(Some(job)) => job,
                _ => return,
            };
            let state = state_of(&ui, &job).await;
            let ended = job.status.is_terminal();
            if ended || last.as_ref() != Some(&state) {
                let event = Event::default()
                    .event(if ended { "end" } else { "job" })
                    .data(state.to_string());
                if sender.send(Ok(event)).await.is_err() || ended {
                    return;
                }
                last = Some(state);
            }
            // The page closed: stop reading the job.
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn confirm_cancel(State(ui): Shared, Path(id): Path<String>) -> Response {
    let what = format!(
        "Cancel job {id}: a queued job ends CANCELLED at once; a running one is asked to stop and ends \
         CANCELLED at its next progress write or heartbeat. This is the owner's cancel, done as the operator."
    );
    let action = format!("/jobs/{id}/cancel");
    html(
        "cancel?",
        &ui,
        &pages::confirm(&what, &action, &[("job", &id), ("token", &ui.token)], "cancel the job"),
    )
}

async fn cancel(State(ui): Shared, Path(id): Path<String>, Form(action): Form<Action>) -> Response {
    if action.token != ui.token || action.job != id {
        return problem(StatusCode::FORBIDDEN, &ui, "this form is not from this dashboard");
    }
    let Some(parsed) = JobId::parse(&id) else {
        return problem(StatusCode::NOT_FOUND, &ui, "no such job");
    };
    use longrun_core::ports::CancelOutcome;
    match ui.store.request_cancel(&parsed, now_ms()).await {
        Ok(CancelOutcome::Cancelled(_) | CancelOutcome::Requested(_)) => {
            Redirect::to(&format!("/jobs/{id}")).into_response()
        }
        Ok(CancelOutcome::AlreadyFinished(job)) => {
            problem(StatusCode::CONFLICT, &ui, &format!("{id} already ended {}", job.status))
        }
        Ok(CancelOutcome::NotFound) => problem(StatusCode::NOT_FOUND, &ui, &format!("no job {id}")),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, &ui, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, Method};

    #[test]
    fn only_this_dashboards_own_requests_get_through() {
        let headers = |pairs: &[(&'static str, &str)]| -> HeaderMap {
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        axum::http::HeaderName::from_static(k),
                        HeaderValue::from_str(v).unwrap(),
                    )
                })
                .collect()
        };
        let at = "127.0.0.1:8700";
        type Case<'a> = (&'a [(&'static str, &'a str)], Method, bool);
        let cases: [Case; 9] = [
            (&[("host", at)], Method::GET, true),
            (&[("host", "localhost:8700")], Method::GET, true),
            (&[("host", "evil.example")], Method::GET, false),
            (&[], Method::GET, false),
            (&[("host", at), ("sec-fetch-site", "same-origin")], Method::GET, true),
            (&[("host", at), ("sec-fetch-site", "cross-site")], Method::GET, false),
            (&[("host", at), ("sec-fetch-site", "same-site")], Method::GET, false),
            (&[("host", at), ("origin", "http://127.0.0.1:8700")], Method::POST, true),
            (&[("host", at), ("origin", "http://evil.example")], Method::POST, false),
        ];
        for (pairs, method, allowed) in cases {
            assert_eq!(
                from_this_dashboard(at, &headers(pairs), &method),
                allowed,
                "{pairs:?} {method}"
            );
        }
    }
}
