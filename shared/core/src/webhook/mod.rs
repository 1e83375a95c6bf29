//! Webhooks: announcing a job's end to the `callback_url` its submit gave.
//!
//! Delivery runs from its own queue (`webhooks`) and function, never inline
//! in the worker. Whoever is about to end a job with a callback — the
//! worker, the cancel function, the reconciler, the dead-letter function —
//! first sends its id to that queue ([`announce_end`]), delayed a little,
//! and only then writes the end. The webhook function delivers once it
//! finds the job ended; a job it finds still held by a live run is looked
//! at again later, and one it finds neither ended nor held is left to
//! whoever ends it next (who announces again). So no end goes unannounced,
//! even when a process dies between its write and anything after it.
//!
//! Deliveries are signed per the Standard Webhooks spec ([`signature`]) with
//! the owner's secret (`POST /webhook-secret`), go only to addresses the
//! SSRF guard ([`target`]) allows, and are retried with backoff
//! (`WEBHOOK_RETRY_SCHEDULE_SECONDS`); the job's `callback` shows how it went.

pub mod signature;
pub mod target;

pub use crate::ports::WebhookSecrets;

use crate::ports::{JobMessage, JobQueue, QueueError};
use crate::record::JobRecord;

/// The logical queue (`QUEUE_URLS`) webhook deliveries wait in.
pub const WEBHOOK_QUEUE: &str = "webhooks";
/// The logical queue a delivery goes to when every try failed.
pub const WEBHOOK_DEAD_LETTER_QUEUE: &str = "webhook-dead-letters";
/// Seconds an announcement waits before the webhook function looks: the
/// end it announces is written meanwhile.
pub const ANNOUNCE_DELAY_SECONDS: u32 = 1;

/// Sends `job`'s id to the webhook queue before its end is written, when it
/// has a callback; nothing otherwise. A failure is the caller's to handle:
/// it must not write the end unannounced.
pub async fn announce_end(queue: &dyn JobQueue, job: &JobRecord, now_ms: i64) -> Result<(), QueueError> {
    if job.callback.is_none() {
        return Ok(());
    }
    queue
        .enqueue(WEBHOOK_QUEUE, &JobMessage::for_job(job, now_ms), ANNOUNCE_DELAY_SECONDS)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryJobQueue;
    use serde_json::json;

    #[tokio::test]
    async fn only_jobs_with_a_callback_are_announced() {
        let queue = MemoryJobQueue::new(&[WEBHOOK_QUEUE]);
        let mut job = crate::fixtures::queued_job("alice", "sleep", json!({}));
        announce_end(&queue, &job, 1).await.unwrap();
        assert!(queue.sent().is_empty());
        job.callback = Some(crate::record::Callback::new("https://example.com/hook"));
        announce_end(&queue, &job, 1).await.unwrap();
        let sent = queue.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].queue.as_str(), &sent[0].message.job_id),
            (WEBHOOK_QUEUE, &job.id)
        );
        assert_eq!(sent[0].delay_seconds, ANNOUNCE_DELAY_SECONDS);
    }
}
