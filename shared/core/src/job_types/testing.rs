//! A job type's test harness: the job claimed by a worker over in-memory
//! stores, with its context, so a job type (longrun's own or an app's) is
//! tested without an emulator. Public behind the `test-util` feature:
//!
//! ```toml
//! [dev-dependencies]
//! longrun-core = { version = "…", features = ["test-util"] }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use longrun_core::job_types::testing::Harness;
//! use longrun_core::job_types::{JobContext, TypedJob};
//! use longrun_core::{JobError, ResultObject};
//! use serde_json::json;
//!
//! /// Writes a greeting.
//! struct Greet;
//!
//! #[longrun_core::async_trait]
//! impl TypedJob for Greet {
//!     type Input = String;
//!     type Checkpoint = ();
//!     fn job_type(&self) -> &'static str {
//!         "greet"
//!     }
//!     async fn run(&self, ctx: &JobContext, name: String, _: Option<()>) -> Result<Vec<ResultObject>, JobError> {
//!         let body = format!("hello, {name}");
//!         Ok(vec![ctx.put_result("greeting.txt", body.into(), "text/plain").await?])
//!     }
//! }
//!
//! let h = Harness::new(json!("world")).await;
//! let results = h.run(&Greet).await.unwrap();
//! assert_eq!(results[0].name, "greeting.txt");
//! assert_eq!(h.result("greeting.txt").unwrap(), "hello, world");
//! # }
//! ```

use crate::ports::JobLifecycle;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use super::{JobContext, JobHandler, JobRun, JobServices, StopSignal};
use crate::memory::{MemoryJobStore, MemoryObjectStore};
use crate::ports::{ClaimOutcome, ObjectStore};
use crate::record::{Finish, JobError, JobRecord, Lease, ResultObject};
use crate::time::now_ms;

/// The stores a test job runs against, its input and its context.
pub struct Harness {
    /// The job store, holding the one RUNNING job: progress and checkpoints land here.
    pub store: Arc<MemoryJobStore>,
    /// The object store: put inputs here ([`put_input`](Self::put_input)), read results back.
    pub objects: Arc<MemoryObjectStore>,
    /// The job's context, as the worker hands it to a handler.
    pub ctx: JobContext,
    /// The run's stop signal: [`StopSignal::cancel`] is what the worker's
    /// heartbeat does when the owner cancels.
    pub signal: Arc<StopSignal>,
    /// The job's input, as submitted.
    pub input: Value,
}

impl Harness {
    /// A fresh job with `input`, claimed with ten minutes of lease and
    /// deadline; progress writes are not throttled.
    pub async fn new(input: Value) -> Harness {
        harness(input, None).await
    }

    /// A job with `input` resuming from `checkpoint`, the JSON an earlier
    /// run saved (a typed job gets it parsed as its `resume`).
    pub async fn resuming(input: Value, checkpoint: Value) -> Harness {
        harness(input, Some(checkpoint)).await
    }

    /// The same job with `input` instead: for an input naming an object put
    /// with [`put_input`](Self::put_input) after the harness was made.
    pub fn with_input(mut self, input: Value) -> Harness {
        self.input = input;
        self
    }

    /// Runs `job` on the harness's input, through the same JSON parsing
    /// submit and the worker use.
    pub async fn run(&self, job: &dyn JobHandler) -> Result<Vec<ResultObject>, JobError> {
        job.run(&self.ctx, &self.input).await
    }

    /// The job's record as the store holds it now: progress, message, checkpoint.
    pub async fn job(&self) -> JobRecord {
        self.store
            .get(self.ctx.job_id())
            .await
            .expect("the memory store answers")
            .expect("the harness's job exists")
    }

    /// Puts `body` where the job may read it, under `name` in its owner's
    /// input prefix, and answers the key to name in the input.
    pub async fn put_input(&self, name: &str, body: impl Into<Bytes>) -> String {
        let key = input_key(name);
        self.objects
            .put(&key, body.into(), "application/octet-stream")
            .await
            .expect("the memory store takes it");
        key
    }

    /// The bytes of the result the job wrote under `name`, if it wrote one.
    pub fn result(&self, name: &str) -> Option<Bytes> {
        self.objects.object(&self.ctx.result_key(name)).map(|(body, _)| body)
    }
}

/// A job with `input` (resuming from `checkpoint`, if any), claimed by a
/// worker with ten minutes of lease and deadline, and its context; progress
/// writes are not throttled.
pub async fn harness(input: Value, checkpoint: Option<Value>) -> Harness {
    let store = Arc::new(MemoryJobStore::new());
    let objects = Arc::new(MemoryObjectStore::new());
    let mut job = crate::fixtures::queued_job(HARNESS_OWNER, "test", input.clone());
    job.checkpoint = checkpoint;
    store.insert(job.clone());
    claimed_run(store, objects, &job.id, input, Duration::from_secs(600)).await
}

impl Harness {
    /// The same run with only `time` left before its stop time (the
    /// invocation's deadline less the worker's margin): a job that saves
    /// its place before it stops is tested without a long input.
    pub fn stopping_in(mut self, time: Duration) -> Harness {
        self.ctx.run.stop_at = Instant::now() + time;
        self
    }

    /// The next run of the same job, as a worker makes it after this run
    /// stopped at its deadline: this run's end written as a continuation,
    /// the job claimed again under a new lease (so its results go to new
    /// keys) with the checkpoint this run saved, `time` before its stop.
    pub async fn next_run(&self, time: Duration) -> Harness {
        let now = now_ms();
        let continuation = Finish::Continuation {
            run_at: now,
            due_at: now + 60_000,
            stalled_runs: 0,
            queue: None,
        };
        self.store
            .finish(self.ctx.job_id(), &self.ctx.run.lease_token, &continuation, now)
            .await
            .expect("the run still holds the job");
        let (store, objects) = (self.store.clone(), self.objects.clone());
        claimed_run(store, objects, self.ctx.job_id(), self.input.clone(), time).await
    }
}

/// Job `id` of `store` claimed now, with `stop_in` before its stop time.
async fn claimed_run(
    store: Arc<MemoryJobStore>,
    objects: Arc<MemoryObjectStore>,
    id: &crate::JobId,
    input: Value,
    stop_in: Duration,
) -> Harness {
    let lease = Lease::new(now_ms() + 600_000);
    let ClaimOutcome::Claimed(claimed) = store.claim(id, &lease, now_ms()).await.unwrap() else {
        panic!("the job must be claimable")
    };
    let checkpoint = claimed.checkpoint.clone();
    let signal = Arc::new(StopSignal::default());
    let ctx = JobContext::new(
        JobRun {
            saved_checkpoint: Default::default(),
            owner: claimed.owner.clone(),
            job_id: claimed.id.clone(),
            attempt: claimed.attempts,
            lease_token: lease.token,
            lease_held_until: Arc::new(std::sync::atomic::AtomicI64::new(lease.expires_at)),
            stop_at: Instant::now() + stop_in,
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
        input,
    }
}

/// The owner of the harness's job.
pub const HARNESS_OWNER: &str = "tester";

/// A key under the harness owner's input prefix: what its job may read.
pub fn input_key(name: &str) -> String {
    format!("{}{name}", crate::access::input_prefix(HARNESS_OWNER))
}
