//! Recurring schedules: one record each, owned like a job, every write
//! conditional on the version read; a per-owner count bounds how many an
//! owner keeps.

use async_trait::async_trait;

use super::StoreError;
use crate::schedule::Schedule;

/// What creating a schedule found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleCreate {
    /// Written, and counted against its owner.
    Created,
    /// The owner already keeps `cap` schedules; nothing was written.
    CapReached,
}

/// One page of an owner's schedules, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulePage {
    /// This page's schedules.
    pub schedules: Vec<Schedule>,
    /// Opaque; pass it back for the next page. `None` on the last.
    pub next_cursor: Option<String>,
}

/// The schedules of the jobs table.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Writes a new schedule (version 1) unless its owner keeps `cap`
    /// already: the record and the owner's count change together or not at
    /// all, so concurrent creates never pass the cap.
    async fn create_schedule(&self, schedule: &Schedule, cap: u32) -> Result<ScheduleCreate, StoreError>;

    /// Reads one (strongly consistent).
    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError>;

    /// Writes `schedule` (its version one more than `expected_version`) only
    /// if the stored one is still at `expected_version`: `false` when
    /// another write came first, or it was deleted.
    async fn replace_schedule(&self, schedule: &Schedule, expected_version: u64) -> Result<bool, StoreError>;

    /// Deletes `owner`'s schedule `id` and counts it off: `false` when
    /// there is no such schedule of that owner.
    async fn delete_schedule(&self, owner: &str, id: &str) -> Result<bool, StoreError>;

    /// A page of `owner`'s schedules, oldest first. A cursor this store did
    /// not hand `owner` is `InvalidCursor`.
    async fn list_schedules(&self, owner: &str, limit: usize, cursor: Option<&str>)
        -> Result<SchedulePage, StoreError>;

    /// Ids of up to `limit` schedules whose pass is due at `now_ms`
    /// ([`Schedule::due_at`] with the look-ahead it was written with), the
    /// longest due first (eventually consistent).
    async fn due_schedules(&self, now_ms: i64, limit: usize) -> Result<Vec<String>, StoreError>;
}
