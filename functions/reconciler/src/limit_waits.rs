//! Jobs waiting for room under their limit ([`longrun_core::limits`]) are
//! not lost: each has a delayed message of its own on the way and a place
//! in its key's waiting line. The reconciler leaves alone a queued job that
//! its key's state names as waiting (or holding a slot, between its slot
//! and its claim); one whose place lapsed (its message did not come back in
//! time) is sent again as any other.

use std::collections::{BTreeMap, BTreeSet};

use longrun_core::limits::LimitState;
use longrun_core::{JobId, JobRecord, JobStatus};

use crate::ReconcilerDeps;

/// The queued jobs among `jobs` that their limit's state accounts for at
/// `now_ms`: one read per limit key. A key that cannot be read accounts for
/// nothing (its jobs are handled as before).
pub async fn accounted_for(deps: &ReconcilerDeps, jobs: &[JobRecord], now_ms: i64) -> BTreeSet<JobId> {
    let mut states: BTreeMap<&str, Option<LimitState>> = BTreeMap::new();
    let mut accounted = BTreeSet::new();
    for job in jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued && !j.cancel_requested)
    {
        let Some(key) = job.limit.as_deref() else { continue };
        if !states.contains_key(key) {
            let state = match deps.store.limit_state(key).await {
                Ok(state) => Some(state),
                Err(err) => {
                    tracing::warn!(limit = %key, error = %err, "could not read a limit's state");
                    None
                }
            };
            states.insert(key, state);
        }
        let Some(Some(state)) = states.get(key) else { continue };
        let id = job.id.to_string();
        let waits = state.waiting.get(&id).is_some_and(|w| w.until > now_ms);
        let holds = state.holders.get(&id).is_some_and(|h| h.until > now_ms);
        if waits || holds {
            accounted.insert(job.id.clone());
        }
    }
    accounted
}
