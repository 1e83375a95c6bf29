//! A context over in-memory stores with a leased RUNNING job, for job type tests.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::{JobContext, JobRun, JobServices, StopSignal};
use crate::memory::{MemoryJobStore, MemoryObjectStore};
use crate::ports::{ClaimOutcome, JobStore};
use crate::record::Lease;
use crate::time::now_ms;

/// The stores a test job runs against and its context.
pub struct Harness {
    pub store: Arc<MemoryJobStore>,
    pub objects: Arc<MemoryObjectStore>,
    pub ctx: JobContext,
    /// The run's stop signal, as the worker's heartbeat would raise it.
    pub signal: Arc<StopSignal>,
}

/// A job with `input` (resuming from `checkpoint`, if any), claimed by a
/// worker with ten minutes of lease and deadline, and its context; progress
/// writes are not throttled.
pub async fn harness(input: Value, checkpoint: Option<Value>) -> Harness {
    let store = Arc::new(MemoryJobStore::new());
    let objects = Arc::new(MemoryObjectStore::new());
    let mut job = crate::testing::queued_job(HARNESS_OWNER, "test", input);
    job.checkpoint = checkpoint.clone();
    store.insert(job.clone());
    let lease = Lease::new(now_ms() + 600_000);
    let ClaimOutcome::Claimed(claimed) = store.claim(&job.id, &lease, now_ms()).await.unwrap() else {
        panic!("fresh job must be claimable")
    };
    let signal = Arc::new(StopSignal::default());
    let ctx = JobContext::new(
        JobRun {
            saved_checkpoint: Default::default(),
            owner: claimed.owner.clone(),
            job_id: claimed.id.clone(),
            attempt: claimed.attempts,
            lease_owner: lease.owner,
            lease_held_until: Arc::new(std::sync::atomic::AtomicI64::new(lease.expires_at)),
            stop_at: Instant::now() + Duration::from_secs(600),
            checkpoint,
            readable_results: Vec::new(),
        },
        JobServices {
            store: store.clone(),
            objects: objects.clone(),
            progress_interval: Duration::ZERO,
        },
        signal.clone(),
    );
    Harness {
        store,
        objects,
        ctx,
        signal,
    }
}

/// The owner of the harness's job.
pub const HARNESS_OWNER: &str = "tester";

/// A key under the harness owner's input prefix: what its job may read.
pub fn input_key(name: &str) -> String {
    format!("{}{name}", crate::access::input_prefix(HARNESS_OWNER))
}
