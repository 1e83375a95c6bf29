//! The HTTP API's bodies: the submit request, the job view, and RFC 9457
//! problem details for every error answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ports::StoreError;
use crate::record::{JobError, JobRecord, Priority};
use crate::time::rfc3339;

/// `POST /uploads` body: how many bytes the caller will upload, and a file
/// name for the key (`input` when absent).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The exact size of the upload; the URL is signed for it.
    pub bytes: u64,
    /// The last segment of the key: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128 bytes.
    #[serde(default)]
    pub filename: Option<String>,
}

/// `POST /uploads` answer: where to PUT the input, and the key a job names it by.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct UploadTicket {
    /// The object key, under the caller's own `inputs/<hash>/` prefix: the
    /// `input.source.key` of the jobs that read it.
    pub key: String,
    /// The presigned URL to send the bytes to.
    pub upload_url: String,
    /// Always `PUT`.
    pub method: String,
    /// Headers the upload must carry exactly (they are signed).
    pub headers: std::collections::BTreeMap<String, String>,
    /// When the URL stops working, RFC 3339.
    pub expires_at: String,
    /// The size the URL is signed for.
    pub bytes: u64,
}

/// `POST /jobs` body.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// `type`: the job type, a name in the job registry (unknown types are 422).
    #[serde(rename = "type")]
    pub job_type: String,
    /// The job's input, inline; its job type validates it.
    pub input: Value,
    /// `high`, `normal` (when absent) or `low`: picks the queue the job
    /// waits in (`PRIORITY_QUEUES`; normal jobs go where `JOB_QUEUES` routes
    /// their type). Callers do not name queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Seconds to wait before the job may start; 0 when absent, at most `MAX_DELAY_SECONDS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    /// Attempts retryable errors may use; `DEFAULT_MAX_ATTEMPTS` when absent,
    /// between 1 and `MAX_ATTEMPTS_LIMIT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The job's deadline in seconds from its first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
    /// An `https` URL on a public address to POST the job's end to, signed
    /// (Standard Webhooks) with the caller's webhook secret
    /// (`POST /webhook-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Steps to run after this job succeeds, one after another (a chain):
    /// at most `MAX_CHAIN_STEPS`; an input may name a result of the step
    /// before as `{"from_previous": "<name>"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<crate::chain::ChainStep>,
}

/// `POST /webhook-secret` answer: the caller's new signing secret, shown
/// this once. Deliveries are signed with it from now on, and with the one
/// it replaces until `previous_valid_until`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct WebhookSecretView {
    /// `whsec_<base64>`: the key for verifying `webhook-signature`.
    pub secret: String,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// Until when deliveries are also signed with the secret it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<String>,
}

/// `POST /jobs/{id}/stream` answer: where the job's events stream (a URL
/// that opens without an `Authorization` header, so a browser's
/// `EventSource` can use it), until when it opens.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct StreamUrlView {
    /// `GET` it for `text/event-stream`; it carries a ticket for this job only.
    pub url: String,
    /// Until when the URL opens (and reopens) the stream, RFC 3339.
    pub expires_at: String,
}

/// How the announcement of a job's end to its `callback_url` went.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct CallbackView {
    /// The URL given at submit.
    pub url: String,
    /// `pending` (not yet or being retried), `delivered` or `failed` (every
    /// try failed; the announcement is in the webhook dead-letter queue).
    pub state: String,
    /// Deliveries tried.
    pub attempts: u32,
    /// The HTTP status of the last try, when it got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next try is due, while pending after a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// When a try got a 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

impl CallbackView {
    /// The view of `callback` for a job in generation `generation`.
    pub fn new(callback: &crate::record::Callback, generation: u32) -> Self {
        let callback = callback.for_generation(generation);
        let state = if callback.delivered_at.is_some() {
            "delivered"
        } else if callback.failed_at.is_some() {
            "failed"
        } else {
            "pending"
        };
        CallbackView {
            url: callback.url.clone(),
            state: state.into(),
            attempts: callback.attempts,
            last_status: callback.last_status,
            last_error: callback.last_error.clone(),
            next_attempt_at: callback.next_attempt_at.filter(|_| !callback.settled()).map(rfc3339),
            delivered_at: callback.delivered_at.map(rfc3339),
        }
    }
}

/// A chain as its first job's view shows it (`GET /jobs/{id}` of the root).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChainView {
    /// The chain's overall status: that of the first step that has not
    /// succeeded, or SUCCEEDED once the last one has.
    pub status: String,
    /// Every step, the first job included, in order.
    pub steps: Vec<ChainStepView>,
}

/// One step of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChainStepView {
    /// `type`: its job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Its job id, once the step exists (when the one before succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Its status, or `PENDING` while it does not exist yet.
    pub status: String,
}

/// One result object in a job view, with a presigned download URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    /// The object's name within the job's results.
    pub name: String,
    /// The MIME type it was written with.
    pub content_type: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// A presigned GET URL, valid for `RESULT_URL_TTL_SECONDS`.
    pub url: String,
}

/// What `GET /jobs/{id}` (and submit) answer: the job as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job id (a UUID).
    pub id: String,
    /// `type`: the job type it was submitted with.
    #[serde(rename = "type")]
    pub job_type: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED`, `CANCELLED` or `DEAD_LETTERED`.
    pub status: String,
    /// The logical queue it runs on.
    pub queue: String,
    /// `high`, `normal` or `low`.
    pub priority: Priority,
    /// Percent done, 0–100; 100 once SUCCEEDED.
    pub progress: u8,
    /// The latest progress message, if the job gave one; cleared on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Runs started from the queue so far: continuations after a checkpoint
    /// and takeovers of a crashed run not counted.
    pub attempts: u32,
    /// Times another worker took the job over from a run that crashed or
    /// lost touch (its lease expired); they use no attempt.
    pub takeovers: u32,
    /// How many attempts retryable errors may use before the job fails.
    pub max_attempts: u32,
    /// The job's deadline in seconds, counted from its first start.
    pub timeout_seconds: u32,
    /// Whether a cancel was asked for; a running job stops at its next
    /// progress write or heartbeat.
    pub cancel_requested: bool,
    /// Submit time, RFC 3339 (UTC, milliseconds), as are the other times.
    pub created_at: String,
    /// The last change of status, progress or cancel request.
    pub updated_at: String,
    /// The earliest time the job may (next) start: a delayed start, retry
    /// backoff or continuation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    /// The first start; absent until a worker first claims the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the job reached a terminal state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The last error: why the job FAILED or was DEAD_LETTERED, or what a
    /// pending retry follows; absent after success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Presigned URL of the first result object, once SUCCEEDED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    /// Every result object, presigned; empty (and omitted) unless SUCCEEDED.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub results: Vec<ResultView>,
    /// Only on `GET /jobs/{id}` of a QUEUED job: how many messages wait in
    /// its queue (visible plus delayed), sampled at most
    /// `QUEUE_DEPTH_SAMPLE_MS` ago — roughly the work ahead of it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub queue_depth: Option<u64>,
    /// The webhook announcing the job's end, and how its delivery went.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback: Option<CallbackView>,
    /// The chain the job is a step of: the id of its first job.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chain_id: Option<String>,
    /// The step before this one in its chain.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_job_id: Option<String>,
    /// The step after this one, once this one succeeded and created it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_job_id: Option<String>,
    /// Only on `GET /jobs/{id}` of a chain's first job: the whole chain.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chain: Option<ChainView>,
}

impl JobView {
    /// The view of `job`, with `results` already presigned (empty unless SUCCEEDED).
    pub fn new(job: &JobRecord, results: Vec<ResultView>) -> Self {
        JobView {
            id: job.id.to_string(),
            job_type: job.job_type.clone(),
            status: job.status.to_string(),
            queue: job.queue.clone(),
            priority: job.priority,
            progress: job.progress,
            message: job.progress_message.clone(),
            attempts: job.attempts,
            takeovers: job.takeovers,
            max_attempts: job.max_attempts,
            timeout_seconds: job.timeout_seconds,
            cancel_requested: job.cancel_requested,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            run_at: job.run_at.map(rfc3339),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
            error: job.error.clone(),
            result_url: results.first().map(|r| r.url.clone()),
            results,
            queue_depth: None,
            callback: job.callback.as_ref().map(|c| CallbackView::new(c, job.redrives)),
            chain_id: job.chain.as_ref().map(|c| c.chain_id.to_string()),
            previous_job_id: job
                .chain
                .as_ref()
                .and_then(|c| c.previous_job_id.as_ref())
                .map(|id| id.to_string()),
            next_job_id: crate::chain::next_job_id(job).map(|id| id.to_string()),
            chain: None,
        }
    }
}

/// The result objects of a SUCCEEDED job with download URLs valid for
/// `ttl` (presigning is local: no request); none for any other status.
pub async fn presign_results(
    objects: &dyn crate::ports::ObjectStore,
    job: &JobRecord,
    ttl: std::time::Duration,
) -> Result<Vec<ResultView>, crate::ports::ObjectError> {
    if job.status != crate::record::JobStatus::Succeeded {
        return Ok(Vec::new());
    }
    let mut views = Vec::with_capacity(job.results.len());
    for result in &job.results {
        views.push(ResultView {
            name: result.name.clone(),
            content_type: result.content_type.clone(),
            bytes: result.bytes,
            url: objects.presign_get(&result.key, ttl).await?,
        });
    }
    Ok(views)
}

/// What `GET /jobs` answers: a page of the caller's jobs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    /// This page's jobs, newest first; a page filtered by status may hold
    /// fewer than `limit` and still not be the last.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One field-level complaint inside a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The request field at fault, as a dotted path (`type`, `priority`, `input.widths`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{status} {title}: {detail}")]
pub struct Problem {
    /// `type`: a URN naming the kind of problem, `urn:longrun:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary, the same for every problem of this kind.
    pub title: String,
    /// The HTTP status code of the answer.
    pub status: u16,
    /// What went wrong with this request, for a human.
    pub detail: String,
    /// Field-level complaints (an invalid job); omitted when empty.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:longrun:problem:{slug}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400: the body is not JSON, or a header is malformed.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(400, "malformed-request", "Malformed request", detail)
    }

    /// 401: the request carries no usable caller identity.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", "Unauthorized", detail)
    }

    /// 404: no such job for this caller.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "not-found", "Not found", detail)
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(405, "method-not-allowed", "Method not allowed", detail)
    }

    /// 409: the job is in a state the request cannot change.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "conflict", "Conflict", detail)
    }

    /// 413: the body is larger than the configured limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "request-too-large",
            "Request too large",
            format!("the request body is larger than {limit} bytes; put large inputs in S3 and pass their key"),
        )
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(415, "unsupported-media-type", "Unsupported media type", detail)
    }

    /// 422: well-formed JSON that does not make a valid job.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let mut problem = Self::new(422, "invalid-job", "Invalid job", detail);
        problem.errors = errors;
        problem
    }

    /// 422: an idempotency key reused with a different request.
    pub fn idempotency_conflict(job_id: &str) -> Self {
        Self::new(
            422,
            "idempotency-key-reused",
            "Idempotency key reused",
            format!("this Idempotency-Key was already used for job {job_id} with a different request"),
        )
    }

    /// 503: a dependency is unavailable; retry after a while.
    /// `429`: the owner already has `limit` active jobs; retry after `retry_after` seconds.
    pub fn quota_exceeded(limit: u32, retry_after: u32) -> Self {
        let mut problem = Self::new(
            429,
            "quota-exceeded",
            "Too many active jobs",
            format!(
                "you have {limit} jobs queued or running, the most allowed; nothing was accepted. \
                 Retry after {retry_after} s (with the same Idempotency-Key), or when one of them ends"
            ),
        );
        problem.retry_after = Some(retry_after);
        problem
    }

    /// `503` busy: the job's queue holds more waiting work than it may; the
    /// job was not accepted, retry after `retry_after` seconds.
    pub fn busy(detail: impl Into<String>, retry_after: u32) -> Self {
        let mut problem = Self::new(503, "busy", "System busy", detail);
        problem.retry_after = Some(retry_after);
        problem
    }

    /// `503`: a dependency is down; retry after `retry_after` seconds.
    pub fn unavailable(detail: impl Into<String>, retry_after: u32) -> Self {
        let mut problem = Self::new(503, "unavailable", "Service unavailable", detail);
        problem.retry_after = Some(retry_after);
        problem
    }
}

/// How a storage failure reaches an HTTP caller, in one place (the axum
/// way): an unknown cursor is the caller's mistake (400), a missing job is
/// 404, and anything else is ours, logged here and answered 503 with a short
/// `Retry-After`, never a 5xx without one.
impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidCursor => Problem::malformed("cursor is not one this API handed out"),
            StoreError::NotFound => Problem::not_found("no such job"),
            other => {
                tracing::error!(error = %other, "job store unavailable");
                Problem::unavailable("the job store is unavailable; retry shortly", STORE_RETRY_AFTER_SECONDS)
            }
        }
    }
}

/// Seconds a caller is told to wait when the job store is unavailable.
pub const STORE_RETRY_AFTER_SECONDS: u32 = 1;
