//! What the store keeps per owner rather than per job: webhook signing
//! secrets, stream tickets and open streams, and counters of what an owner
//! was handed per window of time.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::record::JobId;
use crate::streams::{OpenStream, StreamAdmission, StreamLimits};

/// Per-owner data beside the job records.
#[async_trait]
pub trait OwnerData: Send + Sync {
    /// `owner`'s webhook signing secrets, if it made any.
    async fn webhook_secrets(&self, owner: &str) -> Result<Option<WebhookSecrets>, StoreError>;

    /// Stores `new` as `owner`'s webhook secrets, only while the stored ones
    /// are still those made at `expected_created_at` (`None`: none stored);
    /// `false` when another rotation came first.
    async fn replace_webhook_secrets(
        &self,
        owner: &str,
        expected_created_at: Option<i64>,
        new: &WebhookSecrets,
    ) -> Result<bool, StoreError>;

    /// Stores a stream ticket (`POST /jobs/{id}/stream`) until it expires.
    async fn put_stream_ticket(&self, ticket: &StreamTicket) -> Result<(), StoreError>;

    /// The ticket whose token hashes to `token_hash`, unless it expired
    /// before `now_ms` or never existed.
    async fn stream_ticket(&self, token_hash: &str, now_ms: i64) -> Result<Option<StreamTicket>, StoreError>;

    /// Counts one more `counter` (`stream-tickets`, `upload-urls`) for
    /// `owner` in `window` and answers `true`, unless `window.limit` were
    /// counted already (then nothing is counted, `false`): one conditional
    /// request, exact under concurrent callers. A window's count lives a
    /// little longer than the window, then expires.
    async fn count_in_window(&self, owner: &str, counter: &str, window: &RateWindow) -> Result<bool, StoreError>;

    /// Opens `owner`'s stream `id` when its open streams, and the ticket's,
    /// leave room under `limits` ([`crate::streams::admit`]; streams whose
    /// time ran out before `now_ms` do not count): exact under concurrent
    /// opens. A refusal stores nothing.
    async fn open_stream(
        &self,
        owner: &str,
        id: &str,
        stream: &OpenStream,
        now_ms: i64,
        limits: StreamLimits,
    ) -> Result<StreamAdmission, StoreError>;

    /// Gives `owner`'s stream `id` its place back (nothing when not open).
    async fn close_stream(&self, owner: &str, id: &str) -> Result<(), StoreError>;
}

/// A fixed window of time and how many of a thing an owner may have in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// When the window began, epoch milliseconds (a multiple of `length_ms`).
    pub start_ms: i64,
    /// How long it is.
    pub length_ms: i64,
    /// How many it allows.
    pub limit: u32,
}

impl RateWindow {
    /// The window of `length_ms` that `now_ms` falls in, allowing `limit`.
    pub fn at(now_ms: i64, length_ms: i64, limit: u32) -> Self {
        RateWindow {
            start_ms: now_ms - now_ms.rem_euclid(length_ms),
            length_ms,
            limit,
        }
    }

    /// Whole seconds from `now_ms` until the window ends (at least 1): a
    /// refusal's `Retry-After`.
    pub fn seconds_left(&self, now_ms: i64) -> u32 {
        ((self.start_ms + self.length_ms - now_ms).max(0) as u64)
            .div_ceil(1000)
            .max(1) as u32
    }
}

/// The right to open one job's event stream without an `Authorization`
/// header (a browser's `EventSource` cannot send one): handed to the job's
/// owner by the authenticated API, named in the stream URL by a random
/// token of which only the hash is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTicket {
    /// SHA-256 (hex) of the token in the URL.
    pub token_hash: String,
    /// The owner it was handed to.
    pub owner: String,
    /// The one job whose events it opens.
    pub job_id: JobId,
    /// Until when it opens the stream, epoch milliseconds.
    pub expires_at: i64,
}

impl StreamTicket {
    /// A new ticket for `owner` to open `job_id`'s stream until
    /// `expires_at`, and its token (256 random bits, hex): the token goes
    /// in the URL, the ticket (with only its hash) in the store.
    pub fn issue(owner: &str, job_id: &JobId, expires_at: i64) -> (String, StreamTicket) {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let ticket = StreamTicket {
            token_hash: Self::hash_token(&token),
            owner: owner.to_owned(),
            job_id: job_id.clone(),
            expires_at,
        };
        (token, ticket)
    }

    /// SHA-256 (hex) of a ticket token: what the store keeps and looks up.
    pub fn hash_token(token: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    }
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
}
