//! The job records: created once, claimed under a lease, written by their
//! run, ended exactly once.

use async_trait::async_trait;

use super::StoreError;
use crate::record::{Callback, Finish, JobId, JobRecord, Lease, ProgressUpdate};

/// What a conditional create found.
#[derive(Clone, Debug, PartialEq)]
pub enum CreateOutcome {
    /// The record was written: the job is new.
    Created,
    /// A live record with the same id exists (idempotent replay or key reuse).
    Exists(Box<JobRecord>),
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimOutcome {
    /// The caller now holds the lease; the record as written.
    Claimed(Box<JobRecord>),
    /// Someone else holds it, it is finished, or it is not due yet.
    NotClaimable(Box<JobRecord>),
    /// No record has this id.
    NotFound,
}

/// What a conditional state change found.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// The change was made; the record as written.
    Done(Box<JobRecord>),
    /// The record is not in a state the change applies to; the record as found.
    Refused(Box<JobRecord>),
    /// No record has this id.
    NotFound,
}

/// What a cancel request did.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    /// No worker held the job (queued, or running under an expired lease)
    /// and it is now CANCELLED.
    Cancelled(Box<JobRecord>),
    /// The job is running under a live lease; `cancel_requested` is set and
    /// it stops at its next progress write or heartbeat.
    Requested(Box<JobRecord>),
    /// The job had already ended; nothing changed.
    AlreadyFinished(Box<JobRecord>),
    /// No record has this id.
    NotFound,
}

/// One page of a caller's jobs, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPage {
    /// This page's records, newest first; fewer than the limit when filtered
    /// by status, even if more pages follow.
    pub jobs: Vec<JobRecord>,
    /// Opaque; pass it back for the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What a progress write learned from the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAck {
    /// Whether the owner has asked to cancel; the run should then stop.
    pub cancel_requested: bool,
}

/// Job records. Every write is conditional: creates on absence, claims on
/// claimability, everything a worker writes afterwards on its lease. A store
/// holds the retention of its records (`JOB_RETENTION_DAYS`): every way a
/// job ends, and a redrive, sets its TTL that long from now.
#[async_trait]
pub trait JobLifecycle: Send + Sync {
    /// Writes `job` unless a live record with its id exists
    /// (`attribute_not_exists(pk) OR expires_at < now`), in one request.
    async fn create(&self, job: &JobRecord, now_ms: i64) -> Result<CreateOutcome, StoreError>;

    /// Reads a record (strongly consistent).
    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Reads a record eventually consistently: half the cost of
    /// [`get`](Self::get) (0.5 RCU per 4 KB of the record on DynamoDB), and
    /// it may miss a write of the last second. For readers that poll (an
    /// open event stream); a store whose reads are all consistent answers
    /// [`get`](Self::get).
    async fn get_eventually(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.get(id).await
    }

    /// Takes the job for a run ([`JobRecord::claimable_at`]): QUEUED and due
    /// becomes RUNNING under `lease` with `attempts + 1`; RUNNING under an
    /// expired lease is taken over with `takeovers + 1` (a crash does not
    /// use up an attempt). Either way `resends` goes back to 0.
    async fn claim(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ClaimOutcome, StoreError>;

    /// Records progress (and optionally a checkpoint) under the lease.
    async fn record_progress(
        &self,
        id: &JobId,
        lease_token: &str,
        update: &ProgressUpdate,
        now_ms: i64,
    ) -> Result<ProgressAck, StoreError>;

    /// Heartbeat: moves the lease's expiry (and `due_at`) to `lease.expires_at`.
    async fn extend_lease(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ProgressAck, StoreError>;

    /// Ends the run under the lease; returns the record as written.
    async fn finish(
        &self,
        id: &JobId,
        lease_token: &str,
        finish: &Finish,
        now_ms: i64,
    ) -> Result<JobRecord, StoreError>;

    /// Cancels a job no worker holds ([`JobRecord::unheld_at`]: queued, or
    /// running under an expired lease) at once, or asks a running one to stop.
    async fn request_cancel(&self, id: &JobId, now_ms: i64) -> Result<CancelOutcome, StoreError>;

    /// Marks a job DEAD_LETTERED with `error`, for a dead letter sent in
    /// generation `generation`: only while the job is still in that
    /// generation (a message from before a redrive is stale) and
    /// [`JobRecord::dead_letterable_at`] — QUEUED and due (not waiting out a
    /// retry backoff), or RUNNING under an expired lease (a live worker keeps
    /// its job), and not asked to cancel.
    async fn dead_letter(
        &self,
        id: &JobId,
        error: &crate::record::JobError,
        generation: u32,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;

    /// Puts a DEAD_LETTERED job back to QUEUED (operator redrive), due at
    /// `due_at`, as a fresh run in a new generation (`generation + 1`): no
    /// attempts, takeovers, resends or stalled runs counted, no cancel
    /// request, no `started_at` (its `timeout_seconds` counts from the next
    /// start), and the store's retention counted from now. Its checkpoint,
    /// progress and last error are kept.
    async fn requeue_dead_lettered(&self, id: &JobId, now_ms: i64, due_at: i64) -> Result<Transition, StoreError>;

    /// A page of `owner`'s jobs, newest first, optionally only those in
    /// `status` (a filtered page may hold fewer than `limit`, and still have
    /// a next cursor). A cursor that does not decode, or that was handed to
    /// another owner, is `InvalidCursor`.
    async fn list_by_owner(
        &self,
        owner: &str,
        status: Option<crate::record::JobStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError>;

    /// Ids of up to `limit` non-terminal jobs whose `due_at` is before `now_ms`
    /// (the sparse due index; eventually consistent).
    async fn overdue(&self, now_ms: i64, limit: usize) -> Result<Vec<JobId>, StoreError>;

    /// Moves `due_at` from `expected` to `new_due_at`, and with `resent`
    /// counts one more resend; `false` when it was no longer `expected`
    /// (someone else acted on the job).
    async fn defer_due(&self, id: &JobId, expected: i64, new_due_at: i64, resent: bool) -> Result<bool, StoreError>;

    /// Replaces job `id`'s webhook delivery state, only while it is still
    /// exactly `expected` (what the caller read): `false` when another
    /// delivery changed it first, or there is no such job.
    async fn update_callback(&self, id: &JobId, expected: &Callback, new: &Callback) -> Result<bool, StoreError>;
}
