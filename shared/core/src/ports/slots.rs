//! An owner's quota of active jobs: the set of jobs holding its slots.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::StoreError;
use crate::record::JobId;

/// What reserving a slot of an owner's quota of active jobs found.
#[derive(Clone, Debug, PartialEq)]
pub enum SlotOutcome {
    /// The job holds a slot: `newly` when this call took it, not when the
    /// job already held one (a replay).
    Reserved {
        /// Whether this call added the job to the owner's active set.
        newly: bool,
    },
    /// Every slot is held; these are the jobs holding them.
    Full {
        /// The owner's active set as stored.
        active: Vec<JobId>,
        /// When each of them whose id carries no time (a derived id: an
        /// `Idempotency-Key`'s, a chain step's) was reserved, epoch ms by the
        /// store's clock; a random id's time is in it ([`JobId::created_ms`]).
        /// A reservation made before stores kept this has none. A
        /// reservation whose job was never written is told from one whose
        /// job is being written by its age.
        reserved_at: BTreeMap<JobId, i64>,
    },
}

/// The owners' quota slots (`MAX_ACTIVE_JOBS_PER_OWNER`), kept beside the
/// job records so a slot and a job's end can be one write.
#[async_trait]
pub trait QuotaSlots: Send + Sync {
    /// Adds job `id` to `owner`'s set of active jobs, unless the set already
    /// holds `limit` others (one conditional request: exact under concurrent
    /// submits), and keeps when it was reserved when `id` carries no time of
    /// its own (the store's clock). A job
    /// already in the set is `Reserved { newly: false }`.
    async fn reserve_slot(&self, owner: &str, id: &JobId, limit: u32) -> Result<SlotOutcome, StoreError>;

    /// Takes job `id` out of `owner`'s active set; idempotent. A store with
    /// owner quotas on does this itself whenever a job ends (finish, cancel,
    /// dead-letter), and a chain step that succeeds first adds its next
    /// step to the set, in the write that creates it.
    async fn release_slot(&self, owner: &str, id: &JobId) -> Result<(), StoreError>;

    /// `owner`'s active set: the jobs holding a slot of its quota.
    async fn active_slots(&self, owner: &str) -> Result<Vec<JobId>, StoreError>;
}
