//! Job types: the actual work. Each is a [`JobHandler`] registered in
//! [`Registry::standard`], the one place that knows them all; adding a job
//! type touches that function and its own module only.
//!
//! A handler gets a [`JobContext`]: progress and checkpoint reporting (throttled,
//! fenced by the worker's lease, and the channel through which it learns of a
//! cancel request), the invocation deadline, its inputs and a place for results.

mod report;
mod sleep;
mod thumbnail;

pub use report::ReportJob;
pub use sleep::SleepJob;
pub use thumbnail::ThumbnailJob;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use crate::api::FieldError;
use crate::config::Config;
use crate::job::{codes, JobError, JobId, ProgressUpdate, ResultObject};
use crate::ports::{JobStore, ObjectError, ObjectReader, ObjectStore, StoreError};
use crate::time::now_ms;

/// One kind of work.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The `type` callers submit.
    fn job_type(&self) -> &'static str;

    /// Checks an input at submit time, so bad input is refused with a 422
    /// instead of failing later in the worker.
    fn validate(&self, input: &Value) -> Result<(), Vec<FieldError>>;

    /// Does the work and returns the result objects it wrote through `ctx`.
    async fn run(&self, ctx: &JobContext, input: &Value) -> Result<Vec<ResultObject>, JobError>;
}

/// The job types this deployment runs, by type name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn JobHandler>>,
}

impl Registry {
    /// Every job type, as configured (`sleep` only with `ENABLE_SLEEP_JOB`).
    pub fn standard(config: &Config) -> Self {
        let mut registry = Registry::default();
        registry.register(Arc::new(ReportJob));
        registry.register(Arc::new(ThumbnailJob::new(config.max_thumbnail_source_bytes)));
        if config.enable_sleep_job {
            registry.register(Arc::new(SleepJob));
        }
        registry
    }

    pub fn register(&mut self, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(handler.job_type(), handler);
    }

    pub fn get(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(job_type).cloned()
    }

    pub fn job_types(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}

/// Parses a job input into its typed form, turning serde's complaint into a field error.
pub(crate) fn parse_input<T: DeserializeOwned>(input: &Value) -> Result<T, Vec<FieldError>> {
    serde_json::from_value(input.clone()).map_err(|e| {
        vec![FieldError {
            field: "input".into(),
            message: e.to_string(),
        }]
    })
}

pub(crate) fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Rejects object keys outside `inputs/` or with path tricks.
pub(crate) fn check_input_key(field: &str, key: &str) -> Result<(), FieldError> {
    let ok = key.starts_with("inputs/")
        && key.len() > "inputs/".len()
        && key.len() <= 1024
        && !key.split('/').any(|part| part == ".." || part == ".")
        && !key.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(field_error(
            field,
            "must be an object key under inputs/ (at most 1024 characters, no . or .. segments)",
        ))
    }
}

/// Why a running job must stop, raised by its heartbeat or its own progress
/// writes and read by [`JobContext::progress`].
#[derive(Debug, Default)]
pub struct StopSignal(AtomicU8);

const RUN: u8 = 0;
const CANCEL: u8 = 1;
const LEASE_LOST: u8 = 2;

impl StopSignal {
    /// A cancel was requested.
    pub fn cancel(&self) {
        let _ = self.0.compare_exchange(RUN, CANCEL, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Another worker holds the job now.
    pub fn lease_lost(&self) {
        self.0.store(LEASE_LOST, Ordering::SeqCst);
    }

    /// The error the job should stop with, if any.
    pub fn reason(&self) -> Option<JobError> {
        match self.0.load(Ordering::SeqCst) {
            CANCEL => Some(JobError::permanent(codes::CANCELLED, "cancelled on request")),
            LEASE_LOST => Some(JobError::permanent(
                codes::LEASE_LOST,
                "another worker took over this job",
            )),
            _ => None,
        }
    }
}

/// One run of one job: which job and attempt, under which lease, until
/// when, and from which checkpoint.
pub struct JobRun {
    pub job_id: JobId,
    pub attempt: u32,
    pub lease_owner: String,
    pub stop_at: Instant,
    pub checkpoint: Option<Value>,
}

/// What a running job reports through and reads and writes objects with.
#[derive(Clone)]
pub struct JobServices {
    pub store: Arc<dyn JobStore>,
    pub objects: Arc<dyn ObjectStore>,
    /// The least time between two progress writes.
    pub progress_interval: Duration,
}

/// What a running job may use and must report through.
pub struct JobContext {
    run: JobRun,
    services: JobServices,
    last_write: Mutex<Option<Instant>>,
    signal: Arc<StopSignal>,
}

impl JobContext {
    pub fn new(run: JobRun, services: JobServices, signal: Arc<StopSignal>) -> Self {
        JobContext {
            run,
            services,
            last_write: Mutex::new(None),
            signal,
        }
    }

    pub fn job_id(&self) -> &JobId {
        &self.run.job_id
    }

    /// 1 for the first run, 2 for the first retry, …
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    /// The checkpoint a previous attempt saved, to resume from.
    pub fn resume_from(&self) -> Option<&Value> {
        self.run.checkpoint.as_ref()
    }

    /// Time left before the job must stop.
    pub fn remaining(&self) -> Duration {
        self.run.stop_at.saturating_duration_since(Instant::now())
    }

    /// Reports progress (0–100). Writes at most once per progress interval;
    /// answers `Err` when the job must stop: cancel requested, lease lost, or
    /// deadline reached. Handlers propagate it with `?`.
    pub async fn progress(&self, percent: u8, message: impl Into<String>) -> Result<(), JobError> {
        self.report(percent, message.into(), None).await
    }

    /// Like [`progress`](Self::progress), and saves `state` for the next
    /// attempt to resume from.
    pub async fn checkpoint(&self, percent: u8, message: impl Into<String>, state: Value) -> Result<(), JobError> {
        self.report(percent, message.into(), Some(state)).await
    }

    /// `Err` when the job must stop (cancel requested, lease lost), without writing.
    pub fn check(&self) -> Result<(), JobError> {
        match self.signal.reason() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    async fn report(&self, percent: u8, message: String, checkpoint: Option<Value>) -> Result<(), JobError> {
        self.check()?;
        let now = Instant::now();
        if now >= self.run.stop_at {
            return Err(JobError::retryable(
                codes::DEADLINE,
                "the invocation ran out of time before the job finished",
            ));
        }
        {
            let mut last = self.last_write.lock().unwrap();
            if last.is_some_and(|t| now.duration_since(t) < self.services.progress_interval) {
                return Ok(());
            }
            *last = Some(now);
        }
        let update = ProgressUpdate {
            progress: percent.min(100),
            message: Some(message),
            checkpoint,
        };
        match self
            .services
            .store
            .record_progress(&self.run.job_id, &self.run.lease_owner, &update, now_ms())
            .await
        {
            Ok(ack) if ack.cancel_requested => {
                self.signal.cancel();
                self.check()
            }
            Ok(_) => Ok(()),
            Err(StoreError::LeaseLost) => {
                self.signal.lease_lost();
                self.check()
            }
            Err(err) => {
                // Progress is advisory: a failed write must not fail the job.
                tracing::warn!(error = %err, "progress write failed");
                Ok(())
            }
        }
    }

    /// Opens an input object for streaming.
    pub async fn open_input(&self, key: &str) -> Result<ObjectReader, JobError> {
        self.services.objects.open(key).await.map_err(|err| match err {
            ObjectError::NotFound(_) => JobError::permanent(codes::INPUT_NOT_FOUND, format!("no input object {key}")),
            other => JobError::retryable(codes::STORAGE, other.to_string()),
        })
    }

    /// Writes one result object under `results/<job_id>/<name>`. The key is
    /// deterministic, so a re-run overwrites rather than duplicates.
    pub async fn put_result(&self, name: &str, body: Bytes, content_type: &str) -> Result<ResultObject, JobError> {
        let key = format!("results/{}/{name}", self.run.job_id);
        let bytes = body.len() as u64;
        self.services
            .objects
            .put(&key, body, content_type)
            .await
            .map_err(|err| JobError::retryable(codes::STORAGE, err.to_string()))?;
        Ok(ResultObject {
            name: name.to_owned(),
            key,
            content_type: content_type.to_owned(),
            bytes,
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A context over in-memory stores with a leased RUNNING job, for job type tests.
    use super::*;
    use crate::job::{JobRecord, Lease, NewJob};
    use crate::memory::{MemoryJobStore, MemoryObjectStore};
    use crate::ports::{ClaimOutcome, JobStore};

    pub struct Harness {
        pub store: Arc<MemoryJobStore>,
        pub objects: Arc<MemoryObjectStore>,
        pub ctx: JobContext,
    }

    pub async fn harness(input: Value, checkpoint: Option<Value>) -> Harness {
        let store = Arc::new(MemoryJobStore::new());
        let objects = Arc::new(MemoryObjectStore::new());
        let mut job = JobRecord::new_queued(
            NewJob {
                id: JobId::random(),
                owner: "tester".into(),
                job_type: "test".into(),
                queue: "fast".into(),
                input,
                request_hash: "h".into(),
                max_attempts: 3,
                timeout_seconds: 3600,
                delay_seconds: 0,
            },
            now_ms(),
            3600,
            60_000,
        );
        job.checkpoint = checkpoint.clone();
        store.insert(job.clone());
        let lease = Lease::new(now_ms() + 600_000);
        let ClaimOutcome::Claimed(claimed) = store.claim(&job.id, &lease, now_ms()).await.unwrap() else {
            panic!("fresh job must be claimable")
        };
        let ctx = JobContext::new(
            JobRun {
                job_id: claimed.id.clone(),
                attempt: claimed.attempts,
                lease_owner: lease.owner,
                stop_at: Instant::now() + Duration::from_secs(600),
                checkpoint,
            },
            JobServices {
                store: store.clone(),
                objects: objects.clone(),
                progress_interval: Duration::ZERO,
            },
            Arc::new(StopSignal::default()),
        );
        Harness { store, objects, ctx }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::harness;
    use super::*;
    use crate::ports::JobStore;
    use serde_json::json;

    #[test]
    fn input_keys_must_stay_under_inputs() {
        assert!(check_input_key("k", "inputs/a.csv").is_ok());
        assert!(check_input_key("k", "inputs/dir/a.csv").is_ok());
        for bad in [
            "inputs/",
            "results/x/summary.json",
            "inputs/../results/x",
            "a.csv",
            "inputs/./a",
        ] {
            assert!(check_input_key("k", bad).is_err(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn progress_is_written_and_cancel_requests_stop_the_job() {
        let h = harness(json!({}), None).await;
        h.ctx.progress(40, "forty").await.unwrap();
        let job = h.store.get(h.ctx.job_id()).await.unwrap().unwrap();
        assert_eq!((job.progress, job.progress_message.as_deref()), (40, Some("forty")));

        let mut cancelled = job.clone();
        cancelled.cancel_requested = true;
        h.store.insert(cancelled);
        let err = h.ctx.progress(50, "fifty").await.unwrap_err();
        assert_eq!(err.code, codes::CANCELLED);
    }

    #[tokio::test]
    async fn a_lost_lease_stops_the_job() {
        let h = harness(json!({}), None).await;
        let mut stolen = h.store.get(h.ctx.job_id()).await.unwrap().unwrap();
        stolen.lease_owner = Some("someone-else".into());
        h.store.insert(stolen);
        let err = h.ctx.checkpoint(10, "ten", json!({"i": 1})).await.unwrap_err();
        assert_eq!(err.code, codes::LEASE_LOST);
    }

    #[tokio::test]
    async fn progress_writes_are_throttled() {
        let mut h = harness(json!({}), None).await;
        h.ctx.services.progress_interval = Duration::from_secs(3600);
        h.ctx.progress(10, "first").await.unwrap();
        h.ctx.progress(20, "second").await.unwrap();
        let job = h.store.get(h.ctx.job_id()).await.unwrap().unwrap();
        assert_eq!(job.progress, 10, "second write inside the interval must be skipped");
    }

    #[tokio::test]
    async fn results_go_under_the_job_prefix() {
        let h = harness(json!({}), None).await;
        let result = h
            .ctx
            .put_result("out.txt", Bytes::from_static(b"hello"), "text/plain")
            .await
            .unwrap();
        assert_eq!(result.key, format!("results/{}/out.txt", h.ctx.job_id()));
        assert_eq!(result.bytes, 5);
        assert_eq!(h.objects.object(&result.key).unwrap().0, Bytes::from_static(b"hello"));
    }
}
