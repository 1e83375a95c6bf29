//! In-memory adapters of the ports, for unit tests of the domain. They
//! implement the same conditional semantics as the AWS adapters; the
//! contract tests hold both to the same cases.
//!
//! One adapter per module: [`MemoryJobStore`] for [`JobStore`](crate::ports::JobStore),
//! [`MemoryJobQueue`] for [`JobQueue`](crate::ports::JobQueue) and
//! [`MemoryObjectStore`] for [`ObjectStore`](crate::ports::ObjectStore).

mod limits;
mod objects;
mod owners;
mod queue;
mod schedules;
mod store;

pub use objects::MemoryObjectStore;
pub use queue::{MemoryJobQueue, QueuedMessage};
pub use store::{MemoryJobStore, DEFAULT_RETENTION_SECONDS};
