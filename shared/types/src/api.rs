//! The HTTP API's request and answer bodies: uploads, submits, job views
//! and lists, chains, webhook secrets and stream URLs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::problem::{FieldError, Problem};
use crate::{JobError, Priority};

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
    /// When the job may start (RFC 3339), instead of `delay_seconds`: at
    /// most `MAX_DELAY_SECONDS` ahead, at most 5 minutes past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<String>,
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
    pub then: Vec<ChainStep>,
    /// The name of one of the deployment's limits (`LIMITS`) to run the job
    /// under, for a job type that names none itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
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
    /// Attempts begun so far, the one under way included (also while it
    /// waits to continue after a checkpoint): continuations and takeovers of
    /// a crashed run start none.
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
    /// The limit the job runs under (`LIMITS`), if any: a QUEUED job may be
    /// waiting for room under it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub limit: Option<String>,
    /// The schedule whose tick submitted the job, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schedule_id: Option<String>,
    /// That tick's time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schedule_tick_at: Option<String>,
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

/// One step of a chain still to run: a job type and its input (which may
/// hold `{"from_previous": "<result name>"}` placeholders).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainStep {
    /// `type`: the step's job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The step's input; placeholders are replaced when the step is created.
    pub input: Value,
}
