//! RFC 9457 problem details: the body of every error answer.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One field-level complaint inside a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The request field at fault, as a dotted path (`type`, `priority`, `input.widths`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

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

    /// `429`: the owner was handed `limit` of `what` (stream URLs, upload
    /// URLs) this minute, the most allowed; retry after `retry_after` seconds.
    pub fn rate_limited(what: &str, limit: u32, retry_after: u32) -> Self {
        let mut problem = Self::new(
            429,
            "rate-limited",
            "Too many requests of this kind",
            format!("you were handed {limit} {what} this minute, the most allowed; retry after {retry_after} s"),
        );
        problem.retry_after = Some(retry_after);
        problem
    }

    /// `429`: `limit` event streams are open already `scope` (`for this
    /// caller`, `with this URL`); retry after `retry_after` seconds, or close one.
    pub fn too_many_streams(scope: &str, limit: u32, retry_after: u32) -> Self {
        let mut problem = Self::new(
            429,
            "too-many-streams",
            "Too many open streams",
            format!("{limit} streams are open {scope}, the most allowed; close one, or retry after {retry_after} s"),
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
