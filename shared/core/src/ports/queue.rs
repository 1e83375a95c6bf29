//! The work queues: they carry job ids to workers.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::record::{JobId, JobRecord};

/// The body of a queue message: only the job id (the record is the truth),
/// when it was enqueued, and the job's generation then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    /// The job to run.
    pub job_id: JobId,
    /// When the message was sent, epoch milliseconds.
    pub enqueued_at: i64,
    /// The job's [`JobRecord::generation`] when the message was sent (left out
    /// of the body while 0): a dead letter only ends the generation it
    /// belongs to. Sent as `redrives`, the name messages already in flight
    /// carry.
    #[serde(rename = "redrives", default, skip_serializing_if = "is_zero")]
    pub generation: u32,
    /// The job's limit key ([`JobRecord::limit`]; left out without one), so
    /// the worker can take the limit's slot before it claims the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl JobMessage {
    /// A message for `job`, sent now, in its current generation.
    pub fn for_job(job: &JobRecord, now_ms: i64) -> Self {
        JobMessage {
            job_id: job.id.clone(),
            enqueued_at: now_ms,
            generation: job.generation,
            limit: job.limit.clone(),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A queue failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No queue has this logical name (it is not in `QUEUE_URLS`).
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    /// The receipt handle is no longer valid (message deleted or re-received).
    #[error("receipt handle no longer valid")]
    StaleReceipt,
    /// The queue could not be reached or refused the call; try again later.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// The work queues, by logical name (`fast`, `slow`).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends `message` to the queue named `queue`, hidden from consumers for
    /// `delay_seconds` (SQS allows at most 900).
    async fn enqueue(&self, queue: &str, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError>;

    /// Hides a received message for `seconds` more (backoff, heartbeat).
    async fn change_visibility(&self, queue: &str, receipt_handle: &str, seconds: u32) -> Result<(), QueueError>;

    /// How many messages wait in the queue named `queue`: visible plus
    /// delayed (accepted work not yet started; messages being worked on are
    /// not counted). Approximate, as SQS reports it.
    async fn depth(&self, queue: &str) -> Result<u64, QueueError>;

    /// The messages of the queue named `queue` in every state, from one
    /// read: waiting (visible or delayed) and in flight (received, not yet
    /// deleted). Approximate, as SQS reports it. The reconciler compares
    /// them with the jobs it finds waiting too long, to tell a backlog from
    /// lost messages.
    async fn message_counts(&self, queue: &str) -> Result<MessageCounts, QueueError>;
}

/// A queue's messages by state, from one read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Visible or delayed: accepted, not yet received.
    pub waiting: u64,
    /// Received and not yet deleted (being worked on, or held by a consumer
    /// that died with it until its visibility timeout ends).
    pub in_flight: u64,
}

impl MessageCounts {
    /// Every message the queue holds.
    pub fn total(&self) -> u64 {
        self.waiting + self.in_flight
    }
}
