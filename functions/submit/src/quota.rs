//! Quotas at admission: a slot of the owner's active set is reserved
//! before the job is written, and a full set is repaired (slots no live job
//! holds are freed) before a submit is refused — at most once per owner per
//! interval, since a repair reads every job in the set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use longrun_core::api::Problem;
use longrun_core::ports::SlotOutcome;
use longrun_core::record::NewJob;
use longrun_core::time::now_ms;
use longrun_core::JobId;

use crate::{create_and_enqueue, refused_unless_replay, store_unavailable, SubmitDeps, Submitted};

/// How long after a repair of an owner's full quota this process refuses
/// that owner's submits without reading its jobs again.
pub const QUOTA_REPAIR_INTERVAL_MS: i64 = 30_000;

/// Owners whose last repair is remembered before old entries are dropped.
const MAX_REMEMBERED_OWNERS: usize = 10_000;

/// When this process last repaired each owner's full quota.
#[derive(Debug, Default)]
pub struct QuotaRepairs {
    last: Mutex<HashMap<String, i64>>,
}

impl QuotaRepairs {
    /// Whether `owner`'s full set may be repaired at `now_ms`; if so, the
    /// repair is recorded as made now.
    pub fn may_repair(&self, owner: &str, now_ms: i64) -> bool {
        let mut last = self.last.lock().unwrap();
        if !repair_due(last.get(owner).copied(), now_ms) {
            return false;
        }
        if last.len() >= MAX_REMEMBERED_OWNERS {
            // Only the owners repaired within the interval still matter.
            last.retain(|_, at| !repair_due(Some(*at), now_ms));
        }
        last.insert(owner.to_owned(), now_ms);
        true
    }
}

/// Whether a repair last made at `last_ms` (if ever) may run again at `now_ms`.
fn repair_due(last_ms: Option<i64>, now_ms: i64) -> bool {
    last_ms.is_none_or(|at| now_ms - at >= QUOTA_REPAIR_INTERVAL_MS || now_ms < at)
}

/// `Retry-After` of a `429` for an owner at its quota of active jobs.
pub const QUOTA_RETRY_AFTER_SECONDS: u32 = 5;

/// How old a reservation must be, with no record for its job, before
/// submit takes it for leaked and frees it: a crash between the reservation
/// and the put, or a job whose release was lost and whose record has since
/// expired. Its age is the store's `reserved_at`, or for a reservation made
/// before the store kept it, the time in a random (v7) id; a derived id
/// (an `Idempotency-Key`'s, a chain step's) without either is kept.
const LEAKED_RESERVATION_MS: i64 = 60_000;

/// Creates the job within its owner's quota (`MAX_ACTIVE_JOBS_PER_OWNER`):
/// a slot of the owner's active set is reserved first (one conditional
/// request, exact under concurrent submits), then the job is written. A
/// slot this submit took but did not turn into a live job (a replay of an
/// ended job, a reused key, a store failure) is given back.
pub(crate) async fn create_within_quota(
    deps: &SubmitDeps,
    new_job: NewJob,
    has_key: bool,
) -> Result<Submitted, Problem> {
    let limit = deps.config.max_active_jobs_per_owner;
    if limit == 0 {
        return create_and_enqueue(deps, new_job).await;
    }
    let (owner, id) = (new_job.owner.clone(), new_job.id.clone());
    let newly = match reserve_slot(deps, &owner, &id, limit).await {
        Ok(newly) => newly,
        Err(problem) if problem.status == 429 => return refused_unless_replay(deps, &new_job, has_key, problem).await,
        Err(problem) => return Err(problem),
    };
    let outcome = create_and_enqueue(deps, new_job).await;
    let holds_live_job = match &outcome {
        Ok(Submitted::Accepted(_)) => true,
        Ok(Submitted::Replayed(job)) => !job.status.is_terminal(),
        Err(_) => false,
    };
    if newly && !holds_live_job {
        if let Err(err) = deps.store.release_slot(&owner, &id).await {
            tracing::warn!(error = %err, "could not give back an unused quota slot; a later submit repairs it");
        }
    }
    outcome
}

/// Reserves a slot for job `id`: `Ok(newly)`, or `429` when the owner's
/// set is full even after dropping the jobs in it that have ended (their
/// release lost to a crash) — exact, not eventually so.
async fn reserve_slot(deps: &SubmitDeps, owner: &str, id: &JobId, limit: u32) -> Result<bool, Problem> {
    for round in 0..2 {
        match deps.store.reserve_slot(owner, id, limit).await {
            Ok(SlotOutcome::Reserved { newly }) => return Ok(newly),
            Ok(SlotOutcome::Full { active, reserved_at }) if round == 0 => {
                if !deps.repairs.may_repair(owner, now_ms()) {
                    tracing::info!("quota repaired moments ago; not reading its jobs again");
                    break;
                }
                if repair_slots(deps, owner, &active, &reserved_at).await == 0 {
                    break;
                }
            }
            Ok(SlotOutcome::Full { .. }) => break,
            Err(err) => return Err(store_unavailable(err)),
        }
    }
    tracing::warn!(limit, "owner at its quota of active jobs; refused");
    Err(Problem::quota_exceeded(limit, QUOTA_RETRY_AFTER_SECONDS))
}

/// Frees the slots of a full set that no live job holds: jobs that have
/// ended, and reservations over a minute old whose job has no record. How many it freed. It reads the record of every id in the set
/// (up to `MAX_ACTIVE_JOBS_PER_OWNER` strongly consistent reads), so it runs
/// at most once per owner per [`QUOTA_REPAIR_INTERVAL_MS`] in a process.
async fn repair_slots(deps: &SubmitDeps, owner: &str, active: &[JobId], reserved_at: &BTreeMap<JobId, i64>) -> usize {
    let now = now_ms();
    let mut freed = 0;
    for id in active {
        let stale = match deps.store.get(id).await {
            Ok(Some(job)) => job.status.is_terminal() || job.owner != owner,
            Ok(None) => reserved_at
                .get(id)
                .copied()
                .or_else(|| id.created_ms())
                .is_some_and(|made| now - made > LEAKED_RESERVATION_MS),
            Err(_) => false,
        };
        if stale && deps.store.release_slot(owner, id).await.is_ok() {
            tracing::warn!(job_id = %id, "freed a quota slot no live job held");
            freed += 1;
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_are_spaced_by_the_interval_as_a_table() {
        let cases = [
            ("never repaired", None, 1_000, true),
            ("just repaired", Some(1_000), 1_000, false),
            (
                "within the interval",
                Some(1_000),
                1_000 + QUOTA_REPAIR_INTERVAL_MS - 1,
                false,
            ),
            (
                "the interval passed",
                Some(1_000),
                1_000 + QUOTA_REPAIR_INTERVAL_MS,
                true,
            ),
            ("the clock went back", Some(5_000), 1_000, true),
        ];
        for (case, last, now, expected) in cases {
            assert_eq!(repair_due(last, now), expected, "{case}");
        }
    }

    #[test]
    fn each_owner_has_its_own_interval() {
        let repairs = QuotaRepairs::default();
        assert!(repairs.may_repair("alice", 0));
        assert!(!repairs.may_repair("alice", 10));
        assert!(repairs.may_repair("bob", 10));
        assert!(repairs.may_repair("alice", QUOTA_REPAIR_INTERVAL_MS));
    }
}
