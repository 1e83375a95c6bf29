//! The worker function: SQS batches of job ids → runs → results.
//!
//! The life of one message, in order ([`process`]):
//!
//! 1. **Parse.** A body that is not a job message is poison: redelivered
//!    after a backoff until the queue's redrive policy moves it to the
//!    dead-letter queue ([`delivery`]).
//! 2. **Time check.** With less than `DEADLINE_SAFETY_MS` of invocation
//!    left, no job starts: the message is passed on as a fresh one. (The
//!    messages of a batch go through these steps concurrently, up to
//!    `BATCH_CONCURRENCY` at once: [`handle`].)
//! 3. **Claim.** A conditional update sets a lease of `LEASE_SECONDS` (a
//!    takeover of a crashed run counts a takeover, not an attempt). No such
//!    job → poison. Not claimable: a job with a cancel request that no
//!    worker holds ends CANCELLED (a cancel wins over every claim); a
//!    finished or running job is a duplicate delivery (acknowledged); a job
//!    not due yet is passed on, delayed until it is. A claim that fails on a
//!    store fault passes the message on after a short backoff, so store
//!    faults never add up to the dead-letter queue.
//! 4. **Hide.** Not at the claim: the queue's own visibility timeout (6 ×
//!    the worker's timeout) covers a run until its first heartbeat, which
//!    hides the message as long as the lease lives, and every heartbeat
//!    after it. A job that ends before its first heartbeat makes no
//!    ChangeMessageVisibility at all; one whose worker dies before it comes
//!    back through the reconciler once its lease has expired.
//! 5. **Refuse to start** ([`decide::refusal_at_start`]): started more than
//!    `MAX_CLAIMS` times, or past its own `timeout_seconds`, or of a type
//!    this worker does not run → FAILED at once.
//! 6. **Run.** The job type's handler runs with a [`JobContext`] while the
//!    [`heartbeat`] extends the lease and then the message's visibility every
//!    `HEARTBEAT_SECONDS` and passes on cancel requests. The run stops at the
//!    earliest of the invocation deadline (less the safety margin), the
//!    job's own deadline, a lost lease, and a lease about to lapse because
//!    it could not be extended (the job is then passed on to come back just
//!    after the lease expires); a panic is caught. Results go to keys of
//!    this run's own, written only while its lease holds.
//! 7. **Decide** ([`decide::after_run`], pure): SUCCEEDED, CANCELLED (a
//!    cancel seen wins over errors), FAILED, a retry after an exponential
//!    backoff (retryable errors while attempts remain, and crashes, which
//!    `maxReceiveCount` bounds instead), a continuation from the checkpoint
//!    in a new invocation (unless `MAX_STALLED_RUNS` runs in a row saved no
//!    checkpoint: FAILED `no_progress`, [`decide::stalled_runs_after`]) —
//!    on the slow queue for a normal job from the fast one
//!    ([`decide::promotion`]) — or nothing when another worker took the lease.
//! 8. **End** ([`ending`]): the decision is written under the lease (tried
//!    again on a store fault while the lease and invocation last), and the
//!    message is acknowledged, or replaced by a fresh one (a retry, a
//!    continuation, an end that could not be written). Only crashes (a
//!    panic, a killed process) and poison redeliver the message itself and
//!    so count towards the dead-letter queue.

mod decide;
mod delivery;
mod ending;
mod heartbeat;
mod limit_gate;

pub use decide::{
    after_run, backoff_seconds, continuation, promotion, refusal_at_start, stalled_runs_after, unknown_job_type,
    AfterRun, ContinueIn, RunEnd, PROMOTED_FROM, PROMOTED_TO,
};
pub use delivery::Disposition;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use longrun_aws::AwsClients;
use longrun_core::job_types::{JobContext, JobRun, JobServices, Registry, StopSignal};
use longrun_core::ports::{ClaimOutcome, JobMessage, JobQueue, JobStore, ObjectStore};
use longrun_core::record::{codes, Finish, Lease};
use longrun_core::time::now_ms;
use longrun_core::{Config, JobRecord, JobStatus};
use longrun_lambda::{batch_failures, SqsFunction};
use tracing::Instrument;

use delivery::{pass_on, pass_on_after_store_fault, poison};
use ending::{continue_later, end, retry, return_after_lease};
use limit_gate::Gate;

/// What the worker needs; built once per process.
#[derive(Clone)]
pub struct WorkerDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The job types this app runs.
    pub registry: Arc<Registry>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// The work queues.
    pub queue: Arc<dyn JobQueue>,
    /// Job inputs and results.
    pub objects: Arc<dyn ObjectStore>,
}

impl WorkerDeps {
    /// The production wiring, running the job types of `registry` (an
    /// app's own: see `longrun_bootstrap::run`).
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients, registry: Arc<Registry>) -> Self {
        WorkerDeps {
            registry,
            store: clients.job_store(&config),
            queue: clients.job_queue(&config),
            objects: clients.object_store(&config),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl SqsFunction for WorkerDeps {
    async fn call(&self, event: SqsEvent, context: &lambda_runtime::Context) -> SqsBatchResponse {
        handle(self, event, context).await
    }
}

/// Handles one SQS batch within the invocation's deadline (from `context`):
/// up to `BATCH_CONCURRENCY` messages at once, each with its own claim,
/// lease, heartbeat, deadline and disposition, started in the batch's
/// order. A batch of short jobs takes about as long as its longest job.
pub async fn handle(deps: &WorkerDeps, event: SqsEvent, context: &lambda_runtime::Context) -> SqsBatchResponse {
    let deadline_ms = context.deadline as i64;
    let slots = Arc::new(tokio::sync::Semaphore::new(deps.config.batch_concurrency));
    let mut runs = tokio::task::JoinSet::new();
    // Until its run reports, a message counts as one to redeliver.
    let mut outcomes: Vec<(String, Disposition)> = event
        .records
        .iter()
        .map(|m| (m.message_id.clone().unwrap_or_default(), Disposition::Redeliver))
        .collect();
    for (index, message) in event.records.into_iter().enumerate() {
        let (deps, slots) = (deps.clone(), slots.clone());
        let run = async move {
            // FIFO: messages start in the batch's order as slots free up.
            let _slot = slots.acquire_owned().await;
            let disposition = if deadline_ms - now_ms() < deps.config.deadline_safety.as_millis() as i64 {
                tracing::warn!(message_id = ?message.message_id, "too little invocation time left to start a job; passing it on");
                pass_on(&deps, &message, 0).await
            } else {
                process(&deps, &message, deadline_ms).await
            };
            (index, disposition)
        };
        runs.spawn(run.instrument(tracing::Span::current()));
    }
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok((index, disposition)) => outcomes[index].1 = disposition,
            // `process` catches the handler's panics; one of its own is a
            // bug: its message stays one to redeliver.
            Err(err) => tracing::error!(error = %err, "a message's processing failed; it will come back"),
        }
    }
    batch_failures(
        outcomes
            .into_iter()
            .filter(|(_, disposition)| *disposition == Disposition::Redeliver)
            .map(|(id, _)| id),
    )
}

/// Handles one message (steps 1 and 3–8 of the module's lifecycle).
pub async fn process(deps: &WorkerDeps, message: &SqsMessage, deadline_ms: i64) -> Disposition {
    let body = message.body.as_deref().unwrap_or("");
    let Ok(job_message) = serde_json::from_str::<JobMessage>(body) else {
        tracing::error!(message_id = ?message.message_id, %body, "poison message: not a job message");
        return poison(deps, message).await;
    };
    let message_id = message.message_id.as_deref().unwrap_or("");
    let span = tracing::info_span!("job", job_id = %job_message.job_id, %message_id);
    run_message(deps, message, &job_message, deadline_ms)
        .instrument(span)
        .await
}

/// Takes the job's limit slot (if it names a limit), claims it and runs it;
/// the slot is given back however the run ends, and at once when the claim
/// does not go through.
async fn run_message(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job_message: &JobMessage,
    deadline_ms: i64,
) -> Disposition {
    let id = &job_message.job_id;
    let now = now_ms();
    let lease = Lease::new(now + i64::from(deps.config.lease_seconds) * 1000);
    let queue = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.config.queue_name_for_source(arn))
        .unwrap_or(&deps.config.default_queue);
    let slot = match limit_gate::enter(deps, job_message, &lease, queue, now).await {
        Ok(Gate::Open) => None,
        Ok(Gate::Held(slot)) => Some(slot),
        Ok(Gate::Wait(seconds)) => return wait_for_room(deps, message, job_message, seconds, now).await,
        Err(err) => {
            tracing::warn!(error = %err, "could not take the job's limit slot; passing the message on");
            return pass_on_after_store_fault(deps, message).await;
        }
    };
    let claimed = match deps.store.claim(id, &lease, now).await {
        Ok(ClaimOutcome::Claimed(job)) => Ok(job),
        Ok(ClaimOutcome::NotFound) => {
            tracing::error!("poison message: no such job");
            Err(poison(deps, message).await)
        }
        Ok(ClaimOutcome::NotClaimable(job)) => Err(not_claimable(deps, message, &job).await),
        Err(err) => {
            tracing::warn!(error = %err, "claim failed on a store fault; passing the message on");
            Err(pass_on_after_store_fault(deps, message).await)
        }
    };
    let job = match claimed {
        Ok(job) => job,
        Err(disposition) => {
            // Not this run's to hold: given back if this call took it.
            if let Some(slot) = slot.as_ref().filter(|s| s.newly) {
                limit_gate::leave(deps, slot, id, &lease.token, now_ms()).await;
            }
            return disposition;
        }
    };
    if let Some(slot) = slot.as_ref().filter(|s| !s.ours) {
        // A crashed run's slot: this run holds the job's lease now.
        limit_gate::keep(deps, &slot.key, id, &lease.token, lease.expires_at, now_ms()).await;
    }
    let limit = slot.as_ref().map(|s| s.key.as_str());
    let disposition = run_claimed(deps, message, job, &lease, limit, now, deadline_ms).await;
    if let Some(slot) = &slot {
        limit_gate::leave(deps, slot, id, &lease.token, now_ms()).await;
    }
    disposition
}

/// Runs a claimed job to its disposition (steps 5–8).
async fn run_claimed(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: Box<JobRecord>,
    lease: &Lease,
    limit: Option<&str>,
    claimed_at: i64,
    deadline_ms: i64,
) -> Disposition {
    let config = &deps.config;
    let now = claimed_at;
    let lease = lease.clone();
    tracing::info!(attempt = job.attempts, job_type = %job.job_type, "claimed");
    longrun_core::metrics::started(&job, now);
    if let Some(error) = refusal_at_start(&job, now, config.max_claims) {
        return end(deps, message, &job, &lease, Finish::Failed { error }).await;
    }
    let Some(handler) = deps.registry.get(&job.job_type) else {
        let error = unknown_job_type(&job.job_type);
        return end(deps, message, &job, &lease, Finish::Failed { error }).await;
    };

    let job_deadline_ms = job.deadline_ms().unwrap_or(i64::MAX);
    let invocation_stop_ms = deadline_ms - config.deadline_safety.as_millis() as i64;
    // The earlier of the run's two time limits, and the end it makes.
    let (stop_at_ms, at_stop) = if job_deadline_ms <= invocation_stop_ms {
        (job_deadline_ms, RunEnd::JobDeadline)
    } else {
        (invocation_stop_ms, RunEnd::InvocationDeadline)
    };
    let stop_at = tokio::time::Instant::now() + Duration::from_millis((stop_at_ms - now_ms()).max(0) as u64);
    let signal = Arc::new(StopSignal::default());
    let saved_checkpoint = Arc::new(AtomicBool::new(false));
    let lease_held_until = Arc::new(AtomicI64::new(lease.expires_at));
    let ctx = JobContext::new(
        JobRun {
            saved_checkpoint: saved_checkpoint.clone(),
            owner: job.owner.clone(),
            job_id: job.id.clone(),
            attempt: job.attempts,
            lease_token: lease.token.clone(),
            lease_held_until: lease_held_until.clone(),
            stop_at,
            checkpoint: job.checkpoint.clone(),
            readable_results: job
                .chain
                .as_ref()
                .map(|c| c.readable_results.clone())
                .unwrap_or_default(),
        },
        JobServices {
            store: deps.store.clone(),
            objects: deps.objects.clone(),
            progress_interval: config.progress_interval,
        },
        signal.clone(),
    );
    let mut heartbeat = tokio::spawn(
        heartbeat::heartbeat(
            deps.clone(),
            message.clone(),
            job.id.clone(),
            lease.clone(),
            signal.clone(),
            lease_held_until.clone(),
            limit.map(str::to_owned),
        )
        .instrument(tracing::Span::current()),
    );
    let input = job.input.clone();
    let mut task = tokio::spawn(async move { handler.run(&ctx, &input).await }.instrument(tracing::Span::current()));
    let (run_end, handler_done, heartbeat_done) = tokio::select! {
        joined = &mut task => {
            let end = match joined {
                Ok(outcome) => RunEnd::returned(outcome, at_stop),
                Err(join_error) => {
                    tracing::error!(error = %join_error, "job handler panicked");
                    RunEnd::Panicked
                }
            };
            (end, true, false)
        }
        () = tokio::time::sleep_until(stop_at) => (at_stop, false, false),
        // A heartbeat that panicked is taken as a lost lease.
        end = &mut heartbeat => (end.unwrap_or(RunEnd::LeaseLost), false, true),
    };
    // Stop the heartbeat for good before the last write and visibility
    // change, and the handler if it is still running (a finished task or
    // heartbeat must not be awaited again).
    if !heartbeat_done {
        heartbeat.abort();
        let _ = heartbeat.await;
    }
    if !handler_done {
        task.abort();
        let _ = task.await;
    }
    // The run's work is over here (its end is written next): its window.
    tracing::info!(claimed_at = now, stopped_at = now_ms(), "run stopped");
    // The lease as the heartbeat last extended it: the ending's write and
    // its fallbacks count from that expiry.
    let lease = Lease {
        expires_at: lease_held_until.load(Ordering::SeqCst),
        ..lease
    };
    let cancel_seen = signal.reason().is_some_and(|r| r.is(codes::CANCELLED));
    match after_run(run_end, &job, cancel_seen) {
        AfterRun::End(ending) => end(deps, message, &job, &lease, ending).await,
        AfterRun::Retry(error) => {
            let backoff = backoff_seconds(config, job.attempts);
            retry(deps, message, &job, &lease, error, backoff).await
        }
        AfterRun::Continue => {
            let saved = saved_checkpoint.load(Ordering::SeqCst);
            match continuation(&job, saved, config.max_stalled_runs, promotion(&job, config)) {
                Ok(next) => continue_later(deps, message, &job, &lease, next).await,
                Err(error) => end(deps, message, &job, &lease, Finish::Failed { error }).await,
            }
        }
        AfterRun::LeaveToNewHolder => {
            tracing::warn!("lease lost mid-run; the new holder finishes the job");
            Disposition::Ack
        }
        // Nobody can write to the record now; the job comes back as soon as
        // its lease has expired and another worker may take it over.
        AfterRun::ReturnAfterLease(lease_expires_at) => return_after_lease(deps, message, &job, lease_expires_at).await,
    }
}

/// No room under the job's limit. Only a job that could start now waits
/// (passed on, delayed): the message may be a stale one (a job woken and
/// run since, a duplicate of a running job, one not due yet), which would
/// otherwise come back again and again while the limit stays full. One
/// read tells: a stale message's job leaves the line and its message is
/// handled as any unclaimable one.
async fn wait_for_room(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job_message: &JobMessage,
    seconds: u32,
    now: i64,
) -> Disposition {
    let job = match deps.store.get(&job_message.job_id).await {
        Ok(Some(job)) if !job.claimable_at(now) => job,
        Ok(None) => {
            tracing::error!("poison message: no such job");
            return poison(deps, message).await;
        }
        // Waits indeed (or could not be read: waiting is the safe answer).
        _ => return pass_on(deps, message, seconds).await,
    };
    if let Some(key) = &job_message.limit {
        limit_gate::forget(deps, key, &job_message.job_id).await;
    }
    not_claimable(deps, message, &job).await
}

/// A message for a job this worker may not run now.
async fn not_claimable(deps: &WorkerDeps, message: &SqsMessage, job: &JobRecord) -> Disposition {
    let now = now_ms();
    match job.status {
        _ if job.cancel_pending_at(now) => {
            // Asked to stop, and no worker holds it (queued, or its run
            // crashed): a cancel wins over a takeover; it ends here.
            if let Err(err) = longrun_core::webhook::announce_end(deps.queue.as_ref(), job, now).await {
                tracing::warn!(error = %err, "could not announce the end to the webhook queue; passing the message on");
                return pass_on_after_store_fault(deps, message).await;
            }
            match deps.store.request_cancel(&job.id, now).await {
                Ok(_) => {
                    tracing::info!(status = %job.status, "job with a cancel request that no worker holds; cancelled");
                    Disposition::Ack
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not cancel; passing the message on");
                    pass_on_after_store_fault(deps, message).await
                }
            }
        }
        status if status.is_terminal() => {
            tracing::info!(%status, "duplicate delivery of a finished job; dropping it");
            Disposition::Ack
        }
        JobStatus::Running => {
            // Someone holds a live lease: this is a duplicate. If the holder
            // dies, the reconciler re-enqueues the job when its lease expires.
            tracing::info!(lease_expires_at = ?job.lease_expires_at, "duplicate delivery of a running job; dropping it");
            Disposition::Ack
        }
        _ => {
            let run_at = job.run_at.unwrap_or(now);
            let wait = ((run_at - now + 999) / 1000).max(1) as u32;
            tracing::info!(wait_seconds = wait, "job not due yet; passing it on until it is");
            pass_on(deps, message, wait).await
        }
    }
}

#[cfg(test)]
mod tests;
