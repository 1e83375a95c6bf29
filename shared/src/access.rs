//! Owner-scoped access to jobs for the HTTP functions: a caller sees only
//! its own jobs, and another owner's job, an unknown id and a malformed id
//! all answer the same `404`, so ids cannot be probed.

use crate::api::Problem;
use crate::ports::JobStore;
use crate::record::{JobId, JobRecord};

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

    #[tokio::test]
    async fn only_the_owner_sees_a_job_and_every_refusal_is_the_same_404() {
        let store = MemoryJobStore::new();
        let job = crate::testing::queued_job("alice", "sleep", json!({}));
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
