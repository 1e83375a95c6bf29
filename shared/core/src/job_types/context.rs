//! What a running job works with: [`JobContext`], built by the worker from a
//! [`JobRun`] (which job, attempt, lease, deadline and checkpoint) and
//! [`JobServices`] (the store and object store), and the [`StopSignal`]
//! through which it learns it must stop.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::JobResultExt;
use crate::access::owns_input;
use crate::ports::{JobStore, ObjectError, ObjectReader, ObjectStore, StoreError};
use crate::record::{codes, JobError, JobId, ProgressUpdate, ResultObject};
use crate::time::now_ms;

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
    /// The job's owner: the only one whose inputs it may read.
    pub owner: String,
    /// The job this run is of.
    pub job_id: JobId,
    /// 1 for the first run, 2 for the first retry, …
    pub attempt: u32,
    /// The owner of the lease this run holds; every write is fenced by it,
    /// and it names the run in the keys of its results.
    pub lease_token: String,
    /// When the run's lease expires (epoch ms), as the heartbeat last
    /// extended it; no result is written after it.
    pub lease_held_until: Arc<AtomicI64>,
    /// When the job must stop: the invocation's deadline less a safety
    /// margin, or the job's own timeout, whichever comes first.
    pub stop_at: Instant,
    /// The checkpoint a previous attempt saved, to resume from.
    pub checkpoint: Option<Value>,
    /// Set once this run has saved a checkpoint: the worker reads it to tell
    /// a run that made progress from one that did not.
    pub saved_checkpoint: Arc<AtomicBool>,
    /// Result objects of the previous step of the job's chain that its
    /// input names ([`ChainLink::readable_results`](crate::chain::ChainLink)):
    /// the only keys outside its owner's inputs it may open.
    pub readable_results: Vec<String>,
}

/// What a running job reports through and reads and writes objects with.
#[derive(Clone)]
pub struct JobServices {
    /// Where progress and checkpoints are written, under the run's lease.
    pub store: Arc<dyn JobStore>,
    /// Where inputs are read from and results written to.
    pub objects: Arc<dyn ObjectStore>,
    /// The least time between two progress writes.
    pub progress_interval: Duration,
}

/// What a running job may use and must report through.
pub struct JobContext {
    pub(super) run: JobRun,
    pub(super) services: JobServices,
    last_write: Mutex<Option<Instant>>,
    signal: Arc<StopSignal>,
}

impl JobContext {
    /// The context of `run`, reporting through `services` and stopped by `signal`.
    pub fn new(run: JobRun, services: JobServices, signal: Arc<StopSignal>) -> Self {
        JobContext {
            run,
            services,
            // The run's start counts as a write: a job that ends within one
            // progress interval makes no progress write at all.
            last_write: Mutex::new(Some(Instant::now())),
            signal,
        }
    }

    /// The job this run works on.
    pub fn job_id(&self) -> &JobId {
        &self.run.job_id
    }

    /// 1 for the first run, 2 for the first retry, …
    pub fn attempt(&self) -> u32 {
        self.run.attempt
    }

    /// The checkpoint a previous attempt saved, to resume from, as JSON (a
    /// [`TypedJob`](super::TypedJob) gets it parsed, as its `resume`).
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
    /// run to resume from: a [`TypedJob`](super::TypedJob) saves its own
    /// `Checkpoint` type here and gets it back as `resume`. It is written
    /// into the job record (so keep it small: offsets and counters, not
    /// data), fenced by this run's lease, and throttled as progress is: a
    /// checkpoint within the progress interval of the last write is skipped,
    /// so save one often enough that the next one covers it.
    pub async fn checkpoint<S: Serialize + ?Sized>(
        &self,
        percent: u8,
        message: impl Into<String>,
        state: &S,
    ) -> Result<(), JobError> {
        let state = serde_json::to_value(state).permanent(codes::INTERNAL)?;
        self.report(percent, message.into(), Some(state)).await
    }

    /// Like [`checkpoint`](Self::checkpoint), but written whatever the
    /// time since the last write: for the checkpoint a run saves just
    /// before it stops, which must not be skipped. Save these rarely.
    pub async fn checkpoint_now<S: Serialize + ?Sized>(
        &self,
        percent: u8,
        message: impl Into<String>,
        state: &S,
    ) -> Result<(), JobError> {
        *self.last_write.lock().unwrap() = None;
        self.checkpoint(percent, message, state).await
    }

    /// `Ok` while the run may go on, `Err` with the reason once it must stop
    /// (cancel requested, lease lost), without writing: `ctx.ensure_running()?`
    /// between writes. (Input checks are [`TypedJob::check`](super::TypedJob::check).)
    pub fn ensure_running(&self) -> Result<(), JobError> {
        match self.signal.reason() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    async fn report(&self, percent: u8, message: String, checkpoint: Option<Value>) -> Result<(), JobError> {
        self.ensure_running()?;
        let now = Instant::now();
        if now >= self.run.stop_at {
            return Err(JobError::retryable(
                codes::INVOCATION_DEADLINE,
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
        let saves_checkpoint = checkpoint.is_some();
        let update = ProgressUpdate {
            progress: percent.min(100),
            message: Some(message),
            checkpoint,
        };
        match self
            .services
            .store
            .record_progress(&self.run.job_id, &self.run.lease_token, &update, now_ms())
            .await
        {
            Ok(ack) => {
                if saves_checkpoint {
                    self.run.saved_checkpoint.store(true, Ordering::SeqCst);
                }
                if ack.cancel_requested {
                    self.signal.cancel();
                }
                self.ensure_running()
            }
            Err(StoreError::LeaseLost) => {
                self.signal.lease_lost();
                self.ensure_running()
            }
            Err(err) => {
                // Progress is advisory: a failed write must not fail the job.
                tracing::warn!(error = %err, "progress write failed");
                Ok(())
            }
        }
    }

    /// Opens an input object for streaming.
    /// Only the owner's own inputs ([`owns_input`]) open, and the results of
    /// the previous chain step that the job's input names: any other key
    /// fails exactly as a missing one does, without a read, so a job cannot
    /// read another owner's input or learn whether it exists.
    pub async fn open_input(&self, key: &str) -> Result<ObjectReader, JobError> {
        self.open_input_from(key, 0, None).await
    }

    /// [`open_input`](Self::open_input) from byte `offset` on (a run
    /// resuming from its checkpoint); `size` is what is left to read. Pass
    /// the [`etag`](ObjectReader::etag) an earlier run read (save it in the
    /// checkpoint) as `if_match`: if the object was replaced since, the job
    /// fails `input_changed` rather than go on over another object's bytes.
    /// A body that ends before its size fails its read
    /// ([`exact_length`](crate::ports::exact_length)): a cut connection never
    /// reads as the end of the input.
    pub async fn open_input_from(
        &self,
        key: &str,
        offset: u64,
        if_match: Option<&str>,
    ) -> Result<ObjectReader, JobError> {
        let not_found = || JobError::permanent(codes::INPUT_NOT_FOUND, format!("no input object {key}"));
        if !owns_input(&self.run.owner, key) && !self.run.readable_results.iter().any(|k| k == key) {
            tracing::warn!(%key, "the job names an input outside its owner's prefix; refused as not found");
            return Err(not_found());
        }
        self.services
            .objects
            .open_from(key, offset, if_match)
            .await
            .map(crate::ports::exact_length)
            .map_err(|err| match err {
                ObjectError::NotFound(_) => not_found(),
                ObjectError::Changed(_) => JobError::permanent(
                    codes::INPUT_CHANGED,
                    format!("the input object {key} was replaced while the job read it; submit the job again"),
                ),
                other => JobError::retryable(codes::STORAGE, other.to_string()),
            })
    }

    /// The key this run writes a result named `name` to:
    /// `results/<job_id>/<run>/<name>`, `<run>` being the run's lease token.
    pub fn result_key(&self, name: &str) -> String {
        format!("results/{}/{}/{name}", self.run.job_id, self.run.lease_token)
    }

    /// Writes one result object under `results/<job_id>/<run>/<name>`,
    /// where `<run>` is this run's lease token: a key no other run writes.
    /// A zombie (a run that lost its lease, or outlived it) therefore cannot
    /// change the objects a finished job points to; and it writes nothing at
    /// all once its lease is known lost or past its expiry (checked before
    /// the put, without a request).
    pub async fn put_result(&self, name: &str, body: Bytes, content_type: &str) -> Result<ResultObject, JobError> {
        self.ensure_running()?;
        if now_ms() >= self.run.lease_held_until.load(Ordering::SeqCst) {
            self.signal.lease_lost();
            return Err(JobError::permanent(
                codes::LEASE_LOST,
                "the run's lease expired before its result was written",
            ));
        }
        let key = self.result_key(name);
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
mod tests {
    use super::*;
    use crate::job_types::testing::harness;
    use crate::ports::JobLifecycle;
    use serde_json::json;

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
        stolen.lease_token = Some("someone-else".into());
        h.store.insert(stolen);
        let err = h.ctx.checkpoint(10, "ten", &json!({"i": 1})).await.unwrap_err();
        assert_eq!(err.code, codes::LEASE_LOST);
    }

    #[tokio::test]
    async fn progress_writes_are_throttled_from_the_start_of_the_run() {
        let mut h = harness(json!({}), None).await;
        h.ctx.services.progress_interval = Duration::from_secs(3600);
        h.ctx.progress(10, "first").await.unwrap();
        h.ctx.progress(20, "second").await.unwrap();
        let job = h.store.get(h.ctx.job_id()).await.unwrap().unwrap();
        assert_eq!(
            job.progress, 0,
            "a job that ends within one interval of its start writes no progress"
        );

        h.ctx.services.progress_interval = Duration::from_millis(50);
        tokio::time::sleep(Duration::from_millis(60)).await;
        h.ctx.progress(30, "third").await.unwrap();
        h.ctx.progress(40, "fourth").await.unwrap();
        let job = h.store.get(h.ctx.job_id()).await.unwrap().unwrap();
        assert_eq!(job.progress, 30, "one write per interval after that");
    }

    #[tokio::test]
    async fn results_go_under_the_job_and_run_prefix() {
        let h = harness(json!({}), None).await;
        let result = h
            .ctx
            .put_result("out.txt", Bytes::from_static(b"hello"), "text/plain")
            .await
            .unwrap();
        assert_eq!(
            result.key,
            format!("results/{}/{}/out.txt", h.ctx.job_id(), h.ctx.run.lease_token)
        );
        assert_eq!(result.bytes, 5);
        assert_eq!(h.objects.object(&result.key).unwrap().0, Bytes::from_static(b"hello"));
    }

    #[tokio::test]
    async fn a_run_past_its_lease_or_without_it_writes_no_result() {
        let h = harness(json!({}), None).await;
        h.ctx.run.lease_held_until.store(now_ms() - 1, Ordering::SeqCst);
        let err = h
            .ctx
            .put_result("out.txt", Bytes::from_static(b"late"), "text/plain")
            .await
            .unwrap_err();
        assert_eq!(err.code, codes::LEASE_LOST);
        assert!(h.objects.keys().is_empty(), "nothing written past the lease");

        let h = harness(json!({}), None).await;
        h.ctx.signal.lease_lost();
        let err = h
            .ctx
            .put_result("out.txt", Bytes::from_static(b"zombie"), "text/plain")
            .await
            .unwrap_err();
        assert_eq!(err.code, codes::LEASE_LOST);
        assert!(
            h.objects.keys().is_empty(),
            "nothing written by a run that lost its lease"
        );
    }
}
