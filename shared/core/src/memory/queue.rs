//! [`MemoryJobQueue`]: queues as a list of sent messages, checked against
//! the configured queue names like the SQS adapter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{JobMessage, JobQueue, MessageCounts, QueueError};

/// A message the memory queue holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The logical queue it was sent to.
    pub queue: String,
    /// The body: the job id and when it was enqueued.
    pub message: JobMessage,
    /// The delay it was sent with.
    pub delay_seconds: u32,
}

/// Queues as a list of sent messages, with a switch to make sends fail.
#[derive(Default)]
pub struct MemoryJobQueue {
    sent: Mutex<Vec<QueuedMessage>>,
    visibility_changes: Mutex<Vec<(String, String, u32)>>,
    failing_sends: AtomicUsize,
    depth_reads: AtomicUsize,
    deleted: Mutex<std::collections::BTreeMap<String, u64>>,
    queues: Vec<String>,
}

impl MemoryJobQueue {
    /// A queue set with the given logical queue names.
    pub fn new(queues: &[&str]) -> Self {
        MemoryJobQueue {
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            ..Default::default()
        }
    }

    /// Makes the next `count` sends fail as if SQS were unreachable.
    pub fn fail_next_sends(&self, count: usize) {
        self.failing_sends.store(count, Ordering::SeqCst);
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<QueuedMessage> {
        self.sent.lock().unwrap().clone()
    }

    /// As if workers had received and deleted the `count` oldest messages
    /// of `queue`: [`JobQueue::depth`] and [`JobQueue::message_counts`]
    /// count them no more.
    pub fn delete_messages(&self, queue: &str, count: u64) {
        *self.deleted.lock().unwrap().entry(queue.to_owned()).or_default() += count;
    }

    /// The messages sent to `queue` and not deleted.
    fn held(&self, queue: &str) -> Result<u64, QueueError> {
        if !self.queues.iter().any(|q| q == queue) {
            return Err(QueueError::UnknownQueue(queue.to_owned()));
        }
        let sent = self.sent.lock().unwrap().iter().filter(|m| m.queue == queue).count() as u64;
        let deleted = self.deleted.lock().unwrap().get(queue).copied().unwrap_or(0);
        Ok(sent.saturating_sub(deleted))
    }

    /// How many times [`JobQueue::depth`] was asked.
    pub fn depth_reads(&self) -> usize {
        self.depth_reads.load(Ordering::SeqCst)
    }

    /// `(queue, receipt_handle, seconds)` of every visibility change.
    pub fn visibility_changes(&self) -> Vec<(String, String, u32)> {
        self.visibility_changes.lock().unwrap().clone()
    }
}

#[async_trait]
impl JobQueue for MemoryJobQueue {
    async fn enqueue(&self, queue: &str, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError> {
        if !self.queues.iter().any(|q| q == queue) {
            return Err(QueueError::UnknownQueue(queue.to_owned()));
        }
        let failing = self
            .failing_sends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(QueueError::Unavailable("injected send failure".into()));
        }
        self.sent.lock().unwrap().push(QueuedMessage {
            queue: queue.to_owned(),
            message: message.clone(),
            delay_seconds,
        });
        Ok(())
    }

    /// Every message sent to `queue` but those [`MemoryJobQueue::delete_messages`] took.
    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        self.depth_reads.fetch_add(1, Ordering::SeqCst);
        self.held(queue)
    }

    /// What [`JobQueue::depth`] counts, all waiting: nothing receives here.
    async fn message_counts(&self, queue: &str) -> Result<MessageCounts, QueueError> {
        Ok(MessageCounts {
            waiting: self.held(queue)?,
            in_flight: 0,
        })
    }

    async fn change_visibility(&self, queue: &str, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        if !self.queues.iter().any(|q| q == queue) {
            return Err(QueueError::UnknownQueue(queue.to_owned()));
        }
        self.visibility_changes
            .lock()
            .unwrap()
            .push((queue.to_owned(), receipt_handle.to_owned(), seconds));
        Ok(())
    }
}
