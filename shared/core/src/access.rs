//! Owner-scoped access: a caller sees only its own jobs (another owner's
//! job, an unknown id and a malformed id all answer the same `404`, so ids
//! cannot be probed), and a job reads only inputs under its owner's own
//! prefix, `inputs/<owner hash>/…`, which only `POST /uploads` hands out.

use sha2::{Digest, Sha256};

use crate::ports::JobStore;
use crate::record::{JobId, JobRecord};
use longrun_types::Problem;

/// Segments an input key may have below its owner's prefix.
const MAX_INPUT_KEY_SEGMENTS: usize = 4;
/// Longest segment of an input key below its owner's prefix.
const MAX_INPUT_KEY_SEGMENT_LEN: usize = 128;

/// `inputs/<hash>/`: where `owner`'s inputs live. The hash (128 bits of
/// SHA-256 over the owner, hex) keeps owner names out of keys and URLs.
pub fn input_prefix(owner: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"longrun-input-owner-v1\0");
    hasher.update(owner.as_bytes());
    format!("inputs/{}/", hex::encode(&hasher.finalize()[..16]))
}

/// Whether `key` names an input of `owner`: under [`input_prefix`], then 1
/// to 4 plain segments (see [`is_plain_segment`]): no `.`/`..`, no empty
/// segment (`//`), no `%`-encoding, nothing another reading of the key could
/// take outside the prefix.
pub fn owns_input(owner: &str, key: &str) -> bool {
    let Some(rest) = key.strip_prefix(&input_prefix(owner)) else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    segments.len() <= MAX_INPUT_KEY_SEGMENTS && segments.iter().all(|s| is_plain_segment(s))
}

/// A key segment of `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128 bytes.
pub fn is_plain_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && segment.len() <= MAX_INPUT_KEY_SEGMENT_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The job `raw_id` names, when it belongs to `owner`; `404` otherwise
/// (malformed id, no such job, or someone else's), `503` when the store fails.
pub async fn owned_job(store: &dyn JobStore, raw_id: &str, owner: &str) -> Result<JobRecord, Problem> {
    let not_found = || Problem::not_found(format!("no job {raw_id:?}"));
    let id = JobId::parse(raw_id).ok_or_else(not_found)?;
    store
        .get(&id)
        .await?
        .filter(|job| job.owner == owner)
        .ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryJobStore;
    use serde_json::json;

    #[test]
    fn inputs_live_under_a_prefix_of_their_owner_only() {
        let alice = input_prefix("alice");
        assert_eq!(alice, input_prefix("alice"), "stable");
        assert_ne!(alice, input_prefix("bob"));
        assert_eq!(alice.len(), "inputs/".len() + 32 + 1);
        assert!(!alice.contains("alice"), "no owner name in keys");
        assert!(owns_input("alice", &format!("{alice}0f1e/sales.csv")));
        assert!(owns_input("alice", &format!("{alice}a/b/c/d.csv")));
        let refused = [
            format!("{}x/sales.csv", input_prefix("bob")),
            alice.clone(),
            format!("{alice}a//b.csv"),
            format!("{alice}../x.csv"),
            format!("{alice}a/../../{}x.csv", input_prefix("bob")),
            format!("{alice}./x.csv"),
            format!("{alice}%2e%2e/x.csv"),
            format!("{alice}a%2Fb.csv"),
            format!("{alice}a/b/c/d/e.csv"),
            format!("{alice}{}", "x".repeat(129)),
            format!("{alice}.hidden"),
            format!("{alice}a\\b.csv"),
            format!("{alice}x/"),
            "inputs/sales.csv".to_owned(),
            "results/x/summary.json".to_owned(),
            "dead-letters/q/m.json".to_owned(),
            format!("/{alice}x.csv"),
            alice.to_uppercase() + "x.csv",
        ];
        for key in &refused {
            assert!(!owns_input("alice", key), "{key} accepted");
        }
    }

    #[tokio::test]
    async fn only_the_owner_sees_a_job_and_every_refusal_is_the_same_404() {
        let store = MemoryJobStore::new();
        let job = crate::fixtures::queued_job("alice", "sleep", json!({}));
        store.insert(job.clone());
        assert_eq!(owned_job(&store, job.id.as_str(), "alice").await.unwrap(), job);
        for (raw_id, owner) in [
            (job.id.as_str(), "mallory"),
            ("not-an-id", "alice"),
            (JobId::random().as_str(), "alice"),
        ] {
            let refused = owned_job(&store, raw_id, owner).await.unwrap_err();
            assert_eq!((refused.status, refused.detail), (404, format!("no job {raw_id:?}")));
        }
        store.set_unavailable(true);
        let down = owned_job(&store, job.id.as_str(), "alice").await.unwrap_err();
        assert_eq!((down.status, down.retry_after), (503, Some(1)));
    }
}
