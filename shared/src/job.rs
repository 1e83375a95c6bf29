//! The job record and its state machine.
//!
//! A job is one item in the jobs table; the queue only carries its id. States:
//! `QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED`, `RUNNING → QUEUED`
//! (retry or continuation), any non-terminal state → `DEAD_LETTERED` or
//! `CANCELLED`. Terminal states never change.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A job's id: a UUID, random (v7, time-ordered) or derived from
/// `(owner, Idempotency-Key)` (v8).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh, time-ordered id for a submit without an idempotency key.
    pub fn random() -> Self {
        JobId(uuid::Uuid::now_v7().to_string())
    }

    /// The id a submit with an idempotency key always gets, so a replay hits
    /// the same record: the first 16 bytes of SHA-256 over owner and key.
    pub fn for_idempotency_key(owner: &str, key: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"longrun-idempotency-v1\0");
        hasher.update(owner.as_bytes());
        hasher.update(b"\0");
        hasher.update(key.as_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        JobId(uuid::Uuid::new_v8(bytes).to_string())
    }

    /// Parses an id given by a caller (path parameter or queue message).
    /// Only canonical UUIDs are ids; anything else cannot name a job.
    pub fn parse(raw: &str) -> Option<Self> {
        let parsed = uuid::Uuid::try_parse(raw).ok()?;
        let canonical = parsed.to_string();
        (canonical == raw).then_some(JobId(canonical))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    DeadLettered,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::DeadLettered,
    ];

    /// Terminal states never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::DeadLettered => "DEAD_LETTERED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A coded error a job ended (or paused) with. `retryable` says whether
/// another attempt could succeed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl JobError {
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        JobError {
            code: code.to_owned(),
            message: message.into(),
            retryable: false,
        }
    }

    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        JobError {
            code: code.to_owned(),
            message: message.into(),
            retryable: true,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// Error codes the system itself gives (job handlers add their own).
pub mod codes {
    pub const INVALID_INPUT: &str = "invalid_input";
    pub const INPUT_NOT_FOUND: &str = "input_not_found";
    pub const CANCELLED: &str = "cancelled";
    pub const LEASE_LOST: &str = "lease_lost";
    pub const DEADLINE: &str = "invocation_deadline";
    pub const STORAGE: &str = "storage_unavailable";
    pub const UNKNOWN_JOB_TYPE: &str = "unknown_job_type";
    pub const JOB_TIMEOUT: &str = "job_timeout";
    pub const HANDLER_PANICKED: &str = "handler_panicked";
    pub const DEAD_LETTERED: &str = "dead_lettered";
    pub const TOO_MANY_CRASHES: &str = "too_many_crashes";
}

/// One object a job wrote, under `results/<job_id>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultObject {
    pub name: String,
    pub key: String,
    pub content_type: String,
    pub bytes: u64,
}

/// The job record: one item in the jobs table, the single truth about a job.
/// Times are epoch milliseconds except `expires_at` (epoch seconds, the TTL).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub owner: String,
    pub job_type: String,
    /// Logical queue name (`fast`, `slow`), not a URL.
    pub queue: String,
    pub status: JobStatus,
    pub input: Value,
    /// SHA-256 over the canonical request; tells an idempotent replay from a
    /// reuse of the key with another body.
    pub request_hash: String,
    pub attempts: u32,
    pub max_attempts: u32,
    /// The job's deadline in seconds, counted from its first start.
    pub timeout_seconds: u32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub progress: u8,
    pub progress_message: Option<String>,
    pub checkpoint: Option<Value>,
    pub results: Vec<ResultObject>,
    pub error: Option<JobError>,
    pub cancel_requested: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Not before this time (delayed start, retry backoff).
    pub run_at: Option<i64>,
    /// Set while non-terminal: by then something must have happened to the job.
    pub due_at: Option<i64>,
    pub expires_at: i64,
    pub version: u64,
}

/// What a new job needs; the rest of the record starts from defaults.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: JobId,
    pub owner: String,
    pub job_type: String,
    pub queue: String,
    pub input: Value,
    pub request_hash: String,
    pub max_attempts: u32,
    pub timeout_seconds: u32,
    pub delay_seconds: u32,
}

impl JobRecord {
    /// A freshly submitted job. `enqueue_grace_ms` is how long the queue has
    /// to hand it to a worker before the job counts as overdue.
    pub fn new_queued(new: NewJob, now_ms: i64, retention_seconds: i64, enqueue_grace_ms: i64) -> Self {
        let run_at = (new.delay_seconds > 0).then(|| now_ms + i64::from(new.delay_seconds) * 1000);
        JobRecord {
            id: new.id,
            owner: new.owner,
            job_type: new.job_type,
            queue: new.queue,
            status: JobStatus::Queued,
            input: new.input,
            request_hash: new.request_hash,
            attempts: 0,
            max_attempts: new.max_attempts,
            timeout_seconds: new.timeout_seconds,
            lease_owner: None,
            lease_expires_at: None,
            progress: 0,
            progress_message: None,
            checkpoint: None,
            results: Vec::new(),
            error: None,
            cancel_requested: false,
            created_at: now_ms,
            updated_at: now_ms,
            started_at: None,
            finished_at: None,
            run_at,
            due_at: Some(run_at.unwrap_or(now_ms) + enqueue_grace_ms),
            expires_at: now_ms / 1000 + retention_seconds,
            version: 1,
        }
    }

    /// Whether its start time has come: no `run_at` (delay, retry backoff)
    /// or one at or before `now_ms`.
    pub fn is_due_at(&self, now_ms: i64) -> bool {
        self.run_at.is_none_or(|t| t <= now_ms)
    }

    /// Whether it runs under a lease that expired before `now_ms` (its worker
    /// died or lost touch).
    pub fn lease_expired_at(&self, now_ms: i64) -> bool {
        self.status == JobStatus::Running && self.lease_expires_at.is_some_and(|t| t < now_ms)
    }

    /// Whether a worker may take this job now: queued, due and not asked to
    /// stop, or running under a lease that has expired. The one home of the
    /// rule; the DynamoDB claim condition (`aws::dynamo`) encodes the same, and
    /// the contract tests hold both to it.
    pub fn claimable_at(&self, now_ms: i64) -> bool {
        match self.status {
            JobStatus::Queued => self.is_due_at(now_ms) && !self.cancel_requested,
            JobStatus::Running => self.lease_expired_at(now_ms),
            _ => false,
        }
    }

    /// Whether the dead-letter function may end this job DEAD_LETTERED now:
    /// queued and due (not waiting out a retry backoff), or running under an
    /// expired lease (a live worker keeps its job). Same home and same
    /// contract as [`claimable_at`](Self::claimable_at).
    pub fn dead_letterable_at(&self, now_ms: i64) -> bool {
        match self.status {
            JobStatus::Queued => self.is_due_at(now_ms),
            JobStatus::Running => self.lease_expired_at(now_ms),
            _ => false,
        }
    }

    /// When the job's own deadline passes (its first start plus its timeout).
    pub fn deadline_ms(&self) -> Option<i64> {
        self.started_at.map(|t| t + i64::from(self.timeout_seconds) * 1000)
    }

    /// Whether `lease_owner` holds a live claim on this job.
    pub fn is_leased_to(&self, lease_owner: &str) -> bool {
        self.status == JobStatus::Running && self.lease_owner.as_deref() == Some(lease_owner)
    }

    /// The time a record expires (TTL) when it ends at `now_ms`.
    pub fn expiry_after(now_ms: i64, retention_seconds: i64) -> i64 {
        now_ms / 1000 + retention_seconds
    }
}

/// A claim on a job: who holds it and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expires_at: i64,
}

impl Lease {
    pub fn new(expires_at: i64) -> Self {
        Lease {
            owner: uuid::Uuid::new_v4().to_string(),
            expires_at,
        }
    }
}

/// How a run ends, as written by the worker under its lease.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    Succeeded {
        results: Vec<ResultObject>,
    },
    Failed {
        error: JobError,
    },
    Cancelled,
    /// Back to QUEUED to run again at `run_at` (retry after backoff).
    Retry {
        error: JobError,
        run_at: i64,
        /// When it counts as overdue: `run_at` plus the enqueue grace.
        due_at: i64,
    },
    /// Back to QUEUED to go on from its checkpoint at `run_at`: the
    /// invocation ran out of time. Not a new attempt (the count is restored).
    Continue {
        run_at: i64,
        due_at: i64,
    },
}

impl Finish {
    pub fn status(&self) -> JobStatus {
        match self {
            Finish::Succeeded { .. } => JobStatus::Succeeded,
            Finish::Failed { .. } => JobStatus::Failed,
            Finish::Cancelled => JobStatus::Cancelled,
            Finish::Retry { .. } | Finish::Continue { .. } => JobStatus::Queued,
        }
    }
}

/// A progress write from a running job.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressUpdate {
    pub progress: u8,
    pub message: Option<String>,
    pub checkpoint: Option<Value>,
}

/// Sorts object keys recursively so equal JSON values serialise to equal
/// bytes, whatever order the caller wrote them in.
pub fn canonical_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = serde_json::Map::new();
            for key in keys {
                sorted.insert(key.clone(), canonical_json(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// SHA-256 (hex) of the canonical form of `value`.
pub fn hash_json(value: &Value) -> String {
    let bytes = serde_json::to_vec(&canonical_json(value)).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued(now: i64) -> JobRecord {
        crate::testing::queued_job_at("alice", "sleep", json!({"seconds": 1}), now)
    }

    #[test]
    fn idempotency_key_ids_are_stable_and_owner_scoped() {
        let a = JobId::for_idempotency_key("alice", "k1");
        assert_eq!(a, JobId::for_idempotency_key("alice", "k1"));
        assert_ne!(a, JobId::for_idempotency_key("bob", "k1"));
        assert_ne!(a, JobId::for_idempotency_key("alice", "k2"));
        // Owner/key boundaries cannot be shifted to collide.
        assert_ne!(
            JobId::for_idempotency_key("ab", "c"),
            JobId::for_idempotency_key("a", "bc")
        );
        assert_eq!(JobId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn parse_accepts_only_canonical_uuids() {
        assert!(JobId::parse("not-a-uuid").is_none());
        assert!(JobId::parse("").is_none());
        let id = JobId::random();
        assert!(JobId::parse(&id.as_str().to_uppercase()).is_none());
        assert_eq!(JobId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn status_round_trips_and_knows_terminal_states() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!(!JobStatus::Queued.is_terminal());
        assert!(!JobStatus::Running.is_terminal());
        assert!(JobStatus::Succeeded.is_terminal());
        assert!(JobStatus::DeadLettered.is_terminal());
        assert_eq!(JobStatus::parse("queued"), None);
    }

    #[test]
    fn new_job_is_due_after_the_enqueue_grace_and_delay() {
        let job = queued(1_000_000);
        assert_eq!(job.status, JobStatus::Queued);
        assert_eq!(job.due_at, Some(1_060_000));
        assert_eq!(
            job.expires_at,
            1_000 + 3_600,
            "the record lives its retention from submit"
        );
        assert!(job.claimable_at(1_000_000));

        let mut delayed = job.clone();
        delayed.run_at = Some(2_000_000);
        assert!(!delayed.claimable_at(1_999_999));
        assert!(delayed.claimable_at(2_000_000));
    }

    #[test]
    fn running_jobs_are_claimable_only_after_their_lease_expires() {
        let mut job = queued(0);
        job.status = JobStatus::Running;
        job.lease_owner = Some("w1".into());
        job.lease_expires_at = Some(5_000);
        assert!(!job.claimable_at(5_000));
        assert!(job.claimable_at(5_001));
        assert!(job.is_leased_to("w1"));
        assert!(!job.is_leased_to("w2"));
        job.status = JobStatus::Succeeded;
        assert!(!job.claimable_at(i64::MAX));
    }

    #[test]
    fn hash_ignores_key_order_but_not_values() {
        let a = json!({"type": "report", "input": {"a": 1, "b": [1, {"y": 2, "x": 1}]}});
        let b = json!({"input": {"b": [1, {"x": 1, "y": 2}], "a": 1}, "type": "report"});
        let c = json!({"input": {"b": [{"x": 1, "y": 2}, 1], "a": 1}, "type": "report"});
        assert_eq!(hash_json(&a), hash_json(&b));
        assert_ne!(hash_json(&a), hash_json(&c));
    }
}
