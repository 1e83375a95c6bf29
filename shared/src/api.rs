//! The HTTP API's bodies: the submit request, the job view, and RFC 9457
//! problem details for every error answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{JobError, JobRecord};
use crate::ports::StoreError;
use crate::time::rfc3339;

/// `POST /jobs` body.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    #[serde(rename = "type")]
    pub job_type: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The job's deadline in seconds from its first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// One result object in a job view, with a presigned download URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    pub name: String,
    pub content_type: String,
    pub bytes: u64,
    pub url: String,
}

/// What `GET /jobs/{id}` (and submit) answer: the job as its owner sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: String,
    pub queue: String,
    pub progress: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub timeout_seconds: u32,
    pub cancel_requested: bool,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Presigned URL of the first result object, once SUCCEEDED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub results: Vec<ResultView>,
}

impl JobView {
    /// The view of `job`, with `results` already presigned (empty unless SUCCEEDED).
    pub fn new(job: &JobRecord, results: Vec<ResultView>) -> Self {
        JobView {
            id: job.id.to_string(),
            job_type: job.job_type.clone(),
            status: job.status.to_string(),
            queue: job.queue.clone(),
            progress: job.progress,
            message: job.progress_message.clone(),
            attempts: job.attempts,
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
        }
    }
}

/// What `GET /jobs` answers: a page of the caller's jobs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One field-level complaint inside a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{status} {title}: {detail}")]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
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
