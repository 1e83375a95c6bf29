//! A job's status and priority, in the form the record stores and the API shows.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting for a worker: just submitted, delayed, or back after a retry
    /// or a continuation.
    Queued,
    /// Claimed by a worker, which holds the job's lease.
    Running,
    /// Terminal: the handler finished; its results are on the record.
    Succeeded,
    /// Terminal: a permanent error, attempts used up, or past the job's own timeout.
    Failed,
    /// Terminal: stopped at its owner's request.
    Cancelled,
    /// Terminal: its message reached the dead-letter queue (its runs crashed
    /// or timed out every time).
    DeadLettered,
}

impl JobStatus {
    /// Every status, in the order of the state machine.
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

    /// The form stored in the record and shown by the API, e.g. `DEAD_LETTERED`.
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

    /// The status whose [`as_str`](Self::as_str) is exactly `raw` (case-sensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent a job is: it picks the queue (and so the workers) the job
/// waits in, so that a backlog of normal or low jobs never delays a high one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Overtakes everything else: its own queue and workers.
    High,
    /// The job type's own queue (fast or slow).
    #[default]
    Normal,
    /// Bulk work: its own queue, with few workers, behind everything else.
    Low,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The form stored and shown: `high`, `normal`, `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    /// The priority whose [`as_str`](Self::as_str) is exactly `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}
