//! The ports: the traits the functions talk to storage through.
//!
//! The jobs table is [`JobStore`], split by concern: [`JobLifecycle`] (the
//! records, every write conditional), [`QuotaSlots`] (owners' active-job
//! sets), [`OwnerData`] (webhook secrets, stream tickets) and
//! [`LimitSlots`] (per-key execution limits) and [`ScheduleStore`]
//! (recurring schedules). A handler that
//! needs one concern can take just that trait (`&dyn JobStore` upcasts).
//! [`JobQueue`] carries job ids to workers (SQS), [`ObjectStore`] holds job
//! inputs and results (S3). Each has an AWS adapter (`longrun-aws`) and an
//! in-memory one in [`crate::memory`]; `shared/aws/tests/contract/` runs
//! the same cases against both.

mod jobs;
mod limits;
mod objects;
mod owners;
mod queue;
mod schedules;
mod slots;

pub use jobs::{CancelOutcome, ClaimOutcome, CreateOutcome, JobLifecycle, JobPage, ProgressAck, Transition};
pub use limits::{LimitChange, LimitSlots, LIMIT_STATE_KEPT_MS};
pub use objects::{exact_length, throttled, ObjectError, ObjectReader, ObjectStore, UPLOAD_CONTENT_TYPE};
pub use owners::{OwnerData, RateWindow, StreamTicket, WebhookSecrets};
pub use queue::{JobMessage, JobQueue, MessageCounts, QueueError};
pub use schedules::{ScheduleCreate, SchedulePage, ScheduleStore};
pub use slots::{QuotaSlots, SlotOutcome};

/// A storage failure. `LeaseLost` and `NotFound` are answers, the rest are faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write was fenced off: the caller no longer holds the job's lease.
    #[error("lease lost: the job is no longer held by this worker")]
    LeaseLost,
    /// No record has the job's id.
    #[error("job not found")]
    NotFound,
    /// The store could not be reached or refused for load; try again later.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
    /// A list cursor that this store did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The stored item does not decode as a job record.
    #[error("corrupt job record: {0}")]
    Corrupt(String),
}

/// The whole jobs table: job records, quota slots, owner data, limit keys
/// and schedules. Every store implements each trait; this one names them together.
pub trait JobStore: JobLifecycle + QuotaSlots + OwnerData + LimitSlots + ScheduleStore {}

impl<T: JobLifecycle + QuotaSlots + OwnerData + LimitSlots + ScheduleStore + ?Sized> JobStore for T {}
