//! The job id: random, derived from an idempotency key or a schedule tick, or derived from the
//! step before it in a chain.

use std::fmt;

use serde::{Deserialize, Serialize};
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

    /// The id of the step after job `previous`, created at
    /// `previous_created_at` (epoch ms), in its chain: the same every time,
    /// so creating it twice writes one record; and another for a later
    /// record under the same id (an `Idempotency-Key` reused once the first
    /// chain's records expired), so two chains never share a step.
    pub fn next_in_chain(previous: &JobId, previous_created_at: i64) -> JobId {
        JobId::derived(&["longrun-chain-v2", previous.as_str(), &previous_created_at.to_string()])
    }

    /// The id the step after `previous` got in a chain started before step
    /// ids named their predecessor's creation time ([`ChainLink::id_scheme`](super::ChainLink::id_scheme) 1).
    pub fn next_in_chain_v1(previous: &JobId) -> JobId {
        JobId::derived(&["longrun-chain-v1", previous.as_str()])
    }

    /// The id of the job schedule `schedule_id`'s tick at `tick_at` (epoch
    /// ms) submits: the same every time, so a duplicated or retried tick
    /// writes one record.
    pub fn for_schedule_tick(schedule_id: &str, tick_at: i64) -> JobId {
        JobId::derived(&["longrun-schedule-tick-v1", schedule_id, &tick_at.to_string()])
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
