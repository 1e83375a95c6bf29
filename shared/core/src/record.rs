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
        JobId::derived(&["longrun-idempotency-v1", owner, key])
    }

    /// A v8 id from the first 16 bytes of SHA-256 over `parts` joined by
    /// NULs (the first part names the kind of id).
    pub(crate) fn derived(parts: &[&str]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(parts.join("\0").as_bytes());
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

    /// When a random (v7) id was made, epoch milliseconds; `None` for an id
    /// derived from an idempotency key.
    pub fn created_ms(&self) -> Option<i64> {
        let uuid = uuid::Uuid::try_parse(&self.0).ok()?;
        let (seconds, nanos) = uuid.get_timestamp()?.to_unix();
        Some(seconds as i64 * 1000 + i64::from(nanos / 1_000_000))
    }

    /// The id as text: the canonical (lower-case, hyphenated) UUID.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use longrun_types::{codes, shorten, JobError, JobStatus, Priority, MAX_ERROR_MESSAGE_BYTES, TRUNCATION_MARKER};

/// How many times [`JobRecord::resend_wait_ms`] doubles at most.
pub const MAX_RESEND_DOUBLINGS: u32 = 6;

/// One object a job wrote, under `results/<job_id>/<run>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultObject {
    /// The object's name within the job's results, the last part of `key`.
    pub name: String,
    /// The full S3 key, `results/<job_id>/<run>/<name>`: `<run>` names the
    /// run (claim) that wrote it, so no other run — a zombie that lost its
    /// lease, or a later job reusing an expired idempotency key — can write
    /// to a key a finished job points to.
    pub key: String,
    /// The MIME type it was written with.
    pub content_type: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A webhook a job's end is announced to, and how its delivery went.
/// The state is per generation ([`JobRecord::redrives`]): a redriven job
/// announces its new end afresh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Where the announcement is POSTed (checked at submit and again before
    /// every delivery: `https`, a public address).
    pub url: String,
    /// The generation the fields below describe.
    #[serde(default)]
    pub generation: u32,
    /// Deliveries tried so far.
    #[serde(default)]
    pub attempts: u32,
    /// The HTTP status of the last try, when it got an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last try failed (no answer, a refused address, a non-2xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last try was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<i64>,
    /// Not before this time is the next try made (the backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    /// When a try got a 2xx: delivered, nothing more is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
    /// When the last allowed try failed: the announcement went to the
    /// webhook dead-letter queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<i64>,
}

impl Callback {
    /// A callback to `url`, nothing delivered yet.
    pub fn new(url: &str) -> Self {
        Callback {
            url: url.to_owned(),
            ..Callback::default()
        }
    }

    /// This callback's state for generation `generation`: itself, or a
    /// fresh start when it described an earlier one.
    pub fn for_generation(&self, generation: u32) -> Callback {
        if self.generation == generation {
            self.clone()
        } else {
            Callback {
                generation,
                ..Callback::new(&self.url)
            }
        }
    }

    /// Whether nothing more will be sent for this generation.
    pub fn settled(&self) -> bool {
        self.delivered_at.is_some() || self.failed_at.is_some()
    }
}

/// The job record: one item in the jobs table, the single truth about a job.
/// Times are epoch milliseconds except `expires_at` (epoch seconds, the TTL).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// The partition key `pk`.
    pub id: JobId,
    /// The caller who submitted it ([`caller`](crate::apigw::caller)); no one
    /// else sees the job.
    pub owner: String,
    /// The job type: which registered handler runs it.
    pub job_type: String,
    /// Logical queue name (`fast`, `slow`, `urgent`, `bulk`), not a URL.
    pub queue: String,
    /// How urgent the job is; it chose `queue`.
    pub priority: Priority,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// The input as submitted, inline JSON.
    pub input: Value,
    /// SHA-256 over the canonical request; tells an idempotent replay from a
    /// reuse of the key with another body.
    pub request_hash: String,
    /// Runs started from the queue so far (a continuation gives its attempt
    /// back; a takeover of a crashed run is not a new attempt but a
    /// [`takeovers`](Self::takeovers)); reset to 0 by a redrive.
    /// `max_attempts` bounds it for retryable errors.
    pub attempts: u32,
    /// How many attempts retryable errors may use before the job ends FAILED.
    pub max_attempts: u32,
    /// The job's deadline in seconds, counted from its first start.
    pub timeout_seconds: u32,
    /// The token of the worker holding the job ([`Lease::owner`]); set only while RUNNING.
    pub lease_owner: Option<String>,
    /// When that lease lapses unless a heartbeat extends it; set only while RUNNING.
    pub lease_expires_at: Option<i64>,
    /// Percent done, 0–100; 100 once SUCCEEDED.
    pub progress: u8,
    /// The latest progress message; cleared on success.
    pub progress_message: Option<String>,
    /// State the handler saved to resume from; kept across continuations and retries.
    pub checkpoint: Option<Value>,
    /// The objects the job wrote; set when it SUCCEEDED, empty before.
    pub results: Vec<ResultObject>,
    /// The last error: why the job ended FAILED or DEAD_LETTERED, or what a
    /// pending retry follows; cleared on success.
    pub error: Option<JobError>,
    /// Whether the owner asked to cancel; a running job stops at its next
    /// progress write or heartbeat.
    pub cancel_requested: bool,
    /// Submit time; the owner's listing is ordered by it.
    pub created_at: i64,
    /// The last change of status, progress or cancel request (heartbeats do not count).
    pub updated_at: i64,
    /// The first claim, kept across later runs; the job's deadline counts from it.
    pub started_at: Option<i64>,
    /// When the job reached a terminal state.
    pub finished_at: Option<i64>,
    /// Not before this time (delayed start, retry backoff).
    pub run_at: Option<i64>,
    /// Set while non-terminal: by then something must have happened to the job.
    pub due_at: Option<i64>,
    /// TTL in epoch seconds: after it the record (and with it the idempotency
    /// key) may be deleted, and a submit may reuse the id. Set at submit and
    /// again when the job ends.
    pub expires_at: i64,
    /// Write counter: 1 at creation, one more with every write.
    pub version: u64,
    /// Runs in a row that ran out of invocation time without saving a
    /// checkpoint (a job making no progress across continuations); a run
    /// that saves one starts the count again, and `MAX_STALLED_RUNS` ends it.
    pub stalled_runs: u32,
    /// Claims that took the job over from a run whose lease had expired
    /// (its worker crashed, froze or lost touch with the store). They do
    /// not use up `max_attempts`; `attempts + takeovers` is bounded by
    /// `MAX_CLAIMS`. Reset to 0 by a redrive.
    pub takeovers: u32,
    /// How many times an operator redrove the job out of DEAD_LETTERED: the
    /// job's generation. Every queue message carries the generation it was
    /// sent in ([`JobMessage::redrives`](crate::ports::JobMessage)), so a
    /// dead letter from before a redrive cannot end the redriven job.
    pub redrives: u32,
    /// Messages the reconciler (or a replayed submit) sent for the job since
    /// a worker last claimed it. Each one doubles the wait before the next
    /// ([`JobRecord::resend_wait_ms`]), so a backlog gets a bounded number
    /// of duplicates while a lost message is still recovered.
    pub resends: u32,
    /// The webhook its end is announced to, if the submit gave one.
    pub callback: Option<Callback>,
    /// Its place in a chain of jobs (`then`), if it is in one.
    pub chain: Option<crate::chain::ChainLink>,
}

/// What a new job needs; the rest of the record starts from defaults.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Random, or derived from the owner's idempotency key.
    pub id: JobId,
    /// The submitting caller.
    pub owner: String,
    /// Which registered handler runs the job.
    pub job_type: String,
    /// Logical queue name (`fast`, `slow`, `urgent`, `bulk`).
    pub queue: String,
    /// How urgent the job is.
    pub priority: Priority,
    /// The validated input, inline JSON.
    pub input: Value,
    /// SHA-256 over the canonical request ([`JobRecord::request_hash`]).
    pub request_hash: String,
    /// Attempts retryable errors may use.
    pub max_attempts: u32,
    /// The job's deadline in seconds, counted from its first start.
    pub timeout_seconds: u32,
    /// Seconds after submit before the job may start (sets `run_at`); 0 starts at once.
    pub delay_seconds: u32,
    /// The webhook its end is announced to.
    pub callback: Option<Callback>,
    /// Its place in a chain, when submitted with `then` (or created as a step).
    pub chain: Option<crate::chain::ChainLink>,
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
            priority: new.priority,
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
            stalled_runs: 0,
            takeovers: 0,
            redrives: 0,
            resends: 0,
            callback: new.callback,
            chain: new.chain,
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

    /// Whether a worker may take this job now: queued and due, or running
    /// under a lease that has expired (a takeover) — and in both cases not
    /// asked to stop: a cancel request wins over every claim. The one home of
    /// the rule; the DynamoDB claim conditions (`aws::dynamo`) encode the
    /// same, and the contract tests hold both to it.
    pub fn claimable_at(&self, now_ms: i64) -> bool {
        !self.cancel_requested
            && match self.status {
                JobStatus::Queued => self.is_due_at(now_ms),
                JobStatus::Running => self.lease_expired_at(now_ms),
                _ => false,
            }
    }

    /// Whether no worker holds the job: queued, or running under a lease
    /// that has expired. A cancel request ends such a job CANCELLED at once
    /// (nobody is there to see it at a heartbeat). Same home and same
    /// contract as [`claimable_at`](Self::claimable_at).
    pub fn unheld_at(&self, now_ms: i64) -> bool {
        match self.status {
            JobStatus::Queued => true,
            JobStatus::Running => self.lease_expired_at(now_ms),
            _ => false,
        }
    }

    /// Whether this job must end CANCELLED now rather than run: its owner
    /// asked to cancel and no worker holds it. The worker, the reconciler
    /// and the dead-letter function all end such a job instead of running,
    /// re-sending or dead-lettering it.
    pub fn cancel_pending_at(&self, now_ms: i64) -> bool {
        self.cancel_requested && self.unheld_at(now_ms)
    }

    /// Whether the dead-letter function may end this job DEAD_LETTERED now:
    /// queued and due (not waiting out a retry backoff), or running under an
    /// expired lease (a live worker keeps its job), and not asked to cancel
    /// (a cancel request wins: such a job ends CANCELLED). This is the claim
    /// rule itself: a dead letter may end a job exactly when a worker could
    /// take it, so the two can never disagree.
    pub fn dead_letterable_at(&self, now_ms: i64) -> bool {
        self.claimable_at(now_ms)
    }

    /// How long the reconciler waits, after it sends this job again, before
    /// the next resend, when `resends` messages were re-sent before this one
    /// since the last claim: `grace_ms` after the first, doubling with every
    /// resend up to 64 × `grace_ms`. A job waiting behind a backlog thus gets
    /// at most about log2(backlog / grace) + 1 duplicates, and a truly lost
    /// message is still sent again.
    pub fn resend_wait_ms(resends: u32, grace_ms: i64) -> i64 {
        grace_ms.saturating_mul(1 << resends.min(MAX_RESEND_DOUBLINGS))
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
    /// A random token (UUID v4) naming this claim; stored as `lease_owner`.
    pub owner: String,
    /// When the claim lapses unless extended, epoch milliseconds.
    pub expires_at: i64,
}

impl Lease {
    /// A claim under a fresh owner token, until `expires_at` (epoch milliseconds).
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
    /// SUCCEEDED: progress goes to 100 and the error is cleared.
    Succeeded {
        /// The objects the job wrote.
        results: Vec<ResultObject>,
        /// The next step of the job's chain, created in the same write
        /// (only while no cancel was asked for), if there is one.
        next: Option<Box<JobRecord>>,
    },
    /// FAILED with `error`.
    Failed {
        /// Why the job failed.
        error: JobError,
    },
    /// CANCELLED: the run stopped at its owner's request.
    Cancelled,
    /// Back to QUEUED to run again at `run_at` (retry after backoff).
    Retry {
        /// The retryable error the attempt ended with, kept on the record.
        error: JobError,
        /// When the next attempt may start, epoch milliseconds.
        run_at: i64,
        /// When it counts as overdue: `run_at` plus the enqueue grace.
        due_at: i64,
    },
    /// Back to QUEUED to go on from its checkpoint at `run_at`: the
    /// invocation ran out of time. Not a new attempt (the count is restored).
    Continuation {
        /// When the continuation may start, epoch milliseconds.
        run_at: i64,
        /// When it counts as overdue: `run_at` plus the enqueue grace.
        due_at: i64,
        /// The record's new [`JobRecord::stalled_runs`]: 0 when this run
        /// saved a checkpoint, one more than before when it did not.
        stalled_runs: u32,
    },
}

impl Finish {
    /// The status the record takes: QUEUED for `Retry` and `Continuation`.
    pub fn status(&self) -> JobStatus {
        match self {
            Finish::Succeeded { .. } => JobStatus::Succeeded,
            Finish::Failed { .. } => JobStatus::Failed,
            Finish::Cancelled => JobStatus::Cancelled,
            Finish::Retry { .. } | Finish::Continuation { .. } => JobStatus::Queued,
        }
    }
}

/// A progress write from a running job.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressUpdate {
    /// Percent done, 0–100.
    pub progress: u8,
    /// Replaces the record's progress message; `None` clears it.
    pub message: Option<String>,
    /// State to resume from; `None` keeps the record's previous checkpoint.
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
        assert_eq!(JobId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.created_ms(), None, "a derived id carries no time");
        let made = JobId::random().created_ms().unwrap();
        assert!((made - crate::time::now_ms()).abs() < 5_000, "{made}");
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

    #[test]
    fn job_error_messages_are_cut_short_on_a_char_boundary_wherever_they_come_from() {
        // 3 bytes then 2-byte characters: a plain byte cut would split one.
        let long = format!("abc{}", "é".repeat(100_000));
        let check = |message: &str| {
            assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES, "{} bytes kept", message.len());
            assert!(message.len() >= MAX_ERROR_MESSAGE_BYTES - 4, "cut too short");
            assert!(message.starts_with("abcéé"));
            assert!(message.ends_with(TRUNCATION_MARKER));
        };
        check(&JobError::permanent("bad", long.clone()).message);
        check(&JobError::retryable("flaky", long.clone()).message);

        // Read back from a stored record.
        let stored = json!({"code": "bad", "message": long, "retryable": false});
        check(&serde_json::from_value::<JobError>(stored).unwrap().message);

        // Built field by field, it is still written and logged short.
        let literal = JobError {
            code: "bad".into(),
            message: long.clone(),
            retryable: false,
        };
        let written = serde_json::to_value(&literal).unwrap();
        check(written["message"].as_str().unwrap());
        let logged = literal.to_string();
        check(logged.strip_prefix("bad: ").unwrap());

        // Short messages pass untouched.
        let short = JobError::permanent("bad", "line 3: not a number");
        assert_eq!(short.message, "line 3: not a number");
        assert_eq!(short.to_string(), "bad: line 3: not a number");
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdef", 5), "ab…");
    }
}
