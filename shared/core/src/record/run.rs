//! What one run of a job holds and writes: its lease, its progress, the
//! objects it wrote and how it ends.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{JobError, JobRecord, JobStatus};

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

/// A claim on a job: which run holds it and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// A random token (UUID v4) naming this claim, the run that holds it:
    /// the record's [`lease_token`](super::JobRecord::lease_token) (stored as
    /// the item's `lease_owner` attribute), and the `<run>` of the run's
    /// result keys. Not the job's owner, who is a caller.
    pub token: String,
    /// When the claim lapses unless extended, epoch milliseconds.
    pub expires_at: i64,
}

impl Lease {
    /// A claim under a fresh token, until `expires_at` (epoch milliseconds).
    pub fn new(expires_at: i64) -> Self {
        Lease {
            token: uuid::Uuid::new_v4().to_string(),
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
        /// The queue it goes on in, when not the one it came from: a job
        /// promoted from the fast queue to the slow one.
        queue: Option<String>,
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
