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

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// An owner's webhook signing secrets: the current one, and the one it
/// replaced while that is still honoured. Kept on the owner's item in the
/// jobs table; never logged (`Debug` shows no key).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecrets {
    /// `whsec_…`: signs every delivery.
    pub current: String,
    /// When `current` was made, epoch milliseconds.
    pub created_at: i64,
    /// The secret `current` replaced; deliveries carry its signature too
    /// until `previous_valid_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Until when `previous` signs, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_valid_until: Option<i64>,
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("current", &"…")
            .field("created_at", &self.created_at)
            .field("previous", &self.previous.as_ref().map(|_| "…"))
            .field("previous_valid_until", &self.previous_valid_until)
            .finish()
    }
}

impl WebhookSecrets {
    /// The secrets that sign a delivery made at `now_ms`: the current one,
    /// and the previous one while it is honoured.
    pub fn signing_at(&self, now_ms: i64) -> Vec<&str> {
        let mut secrets = vec![self.current.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous, self.previous_valid_until) {
            if now_ms < until {
                secrets.push(previous);
            }
        }
        secrets
    }

    /// What replaces `old` (if any) at `now_ms`: `new` signs from now on,
    /// and `old`'s current secret for `overlap_ms` more.
    pub fn rotated(old: Option<&WebhookSecrets>, new: String, now_ms: i64, overlap_ms: i64) -> Self {
        WebhookSecrets {
            current: new,
            created_at: now_ms,
            previous: old.map(|o| o.current.clone()),
            previous_valid_until: old.map(|_| now_ms + overlap_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryJobQueue;
    use serde_json::json;

    #[test]
    fn secrets_rotate_with_an_overlap_and_never_show_in_debug() {
        let first = WebhookSecrets::rotated(None, "whsec_one".into(), 1_000, 500);
        assert_eq!(first.signing_at(1_000), ["whsec_one"]);
        let second = WebhookSecrets::rotated(Some(&first), "whsec_two".into(), 2_000, 500);
        assert_eq!(second.signing_at(2_499), ["whsec_two", "whsec_one"]);
        assert_eq!(
            second.signing_at(2_500),
            ["whsec_two"],
            "the old one stops after the overlap"
        );
        let shown = format!("{second:?}");
        assert!(!shown.contains("whsec"), "{shown}");
    }

    #[tokio::test]
    async fn only_jobs_with_a_callback_are_announced() {
        let queue = MemoryJobQueue::new(&[WEBHOOK_QUEUE]);
        let mut job = crate::testing::queued_job("alice", "sleep", json!({}));
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
