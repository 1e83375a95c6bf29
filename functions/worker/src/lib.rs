//! The worker function: SQS batches of job ids → runs → results.
//!
//! For each message it claims the job (a conditional update setting a
//! lease of `LEASE_SECONDS`), runs the job type's handler with a
//! [`JobContext`] while a heartbeat extends the lease and the message's
//! visibility every `HEARTBEAT_SECONDS` (and passes on cancel requests), and
//! ends the run under the lease: SUCCEEDED with its result objects, FAILED
//! with a coded error, or back to QUEUED for a retry after an exponential
//! backoff (the message is hidden that long and reported as a batch item
//! failure). A duplicate delivery of a finished or running job does nothing
//! and is acknowledged. A message that names no job is poison: reported as
//! a failure until the queue's redrive policy moves it to the dead-letter
//! queue; so is a handler that panics every time (panics are crashes, bounded
//! by `maxReceiveCount`, not by `max_attempts`). A job past its own
//! `timeout_seconds` ends FAILED (`job_timeout`); one that reaches the end of
//! the invocation continues from its checkpoint in the next. No job is
//! started with less than `DEADLINE_SAFETY_MS` of invocation time left.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use longrun::aws::AwsClients;
use longrun::job::{codes, Finish, JobError, Lease};
use longrun::jobs::{JobContext, JobRun, JobServices, Registry, StopSignal};
use longrun::ports::{ClaimOutcome, JobMessage, JobQueue, JobStore, ObjectStore, StoreError};
use longrun::time::now_ms;
use longrun::{Config, JobId, JobRecord, JobStatus};
use rand::Rng;
use tracing::Instrument;

/// What the worker needs; built once per process.
#[derive(Clone)]
pub struct WorkerDeps {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn JobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub objects: Arc<dyn ObjectStore>,
}

impl WorkerDeps {
    /// The production wiring: DynamoDB, SQS and S3.
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        WorkerDeps {
            registry: Arc::new(Registry::standard(&config)),
            store: clients.job_store(&config),
            queue: clients.job_queue(&config),
            objects: clients.object_store(&config),
            config,
        }
    }
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done with: the event source mapping deletes it.
    Delete,
    /// Report as a batch item failure: it comes back after its visibility timeout.
    Return,
}

/// Handles one SQS batch within the invocation's deadline (from `context`).
pub async fn handle(deps: &WorkerDeps, event: SqsEvent, context: &lambda_runtime::Context) -> SqsBatchResponse {
    let deadline_ms = context.deadline as i64;
    let mut response = SqsBatchResponse::default();
    for message in &event.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        let disposition = if deadline_ms - now_ms() < deps.config.deadline_safety.as_millis() as i64 {
            tracing::warn!(%message_id, "too little invocation time left to start a job; passing it on");
            pass_on(deps, message, 0).await
        } else {
            process(deps, message, deadline_ms).await
        };
        if disposition == Disposition::Return {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Handles one message.
pub async fn process(deps: &WorkerDeps, message: &SqsMessage, deadline_ms: i64) -> Disposition {
    let body = message.body.as_deref().unwrap_or("");
    let Ok(job_message) = serde_json::from_str::<JobMessage>(body) else {
        tracing::error!(message_id = ?message.message_id, %body, "poison message: not a job message");
        return poison(deps, message).await;
    };
    let message_id = message.message_id.as_deref().unwrap_or("");
    let span = tracing::info_span!("job", job_id = %job_message.job_id, %message_id);
    run_message(deps, message, &job_message.job_id, deadline_ms)
        .instrument(span)
        .await
}

async fn run_message(deps: &WorkerDeps, message: &SqsMessage, id: &JobId, deadline_ms: i64) -> Disposition {
    let config = &deps.config;
    let now = now_ms();
    let lease = Lease::new(now + i64::from(config.lease_seconds) * 1000);
    let job = match deps.store.claim(id, &lease, now).await {
        Ok(ClaimOutcome::Claimed(job)) => job,
        Ok(ClaimOutcome::NotFound) => {
            tracing::error!("poison message: no such job");
            return poison(deps, message).await;
        }
        Ok(ClaimOutcome::NotClaimable(job)) => return not_claimable(deps, message, &job).await,
        Err(err) => {
            tracing::warn!(error = %err, "claim failed; the message will come back");
            return Disposition::Return;
        }
    };
    tracing::info!(attempt = job.attempts, job_type = %job.job_type, "claimed");
    // The message now stays hidden as long as the lease lives, and no longer.
    release(deps, message, config.heartbeat_visibility_seconds()).await;
    if job.attempts > config.max_claims {
        // Crashes are bounded by the queue's maxReceiveCount; a job re-sent by
        // the reconciler starts a new count, so this caps them for good.
        let error = JobError::permanent(
            codes::TOO_MANY_CRASHES,
            format!("the job was started {} times without finishing", job.attempts - 1),
        );
        return finish(deps, &job, &lease, Finish::Failed { error }).await.disposition();
    }
    let job_deadline_ms = job.deadline_ms().unwrap_or(i64::MAX);
    if now >= job_deadline_ms {
        let error = JobError::permanent(codes::JOB_TIMEOUT, "the job ran past its timeout_seconds");
        return finish(deps, &job, &lease, Finish::Failed { error }).await.disposition();
    }
    let Some(handler) = deps.registry.get(&job.job_type) else {
        let error = JobError::permanent(
            codes::UNKNOWN_JOB_TYPE,
            format!("this worker does not run {:?} jobs", job.job_type),
        );
        return finish(deps, &job, &lease, Finish::Failed { error }).await.disposition();
    };

    let invocation_stop_ms = deadline_ms - config.deadline_safety.as_millis() as i64;
    let stop_at_ms = invocation_stop_ms.min(job_deadline_ms);
    let job_deadline_first = stop_at_ms >= job_deadline_ms;
    let stop_at = tokio::time::Instant::now() + Duration::from_millis((stop_at_ms - now_ms()).max(0) as u64);
    let signal = Arc::new(StopSignal::default());
    let ctx = JobContext::new(
        JobRun {
            job_id: job.id.clone(),
            attempt: job.attempts,
            lease_owner: lease.owner.clone(),
            stop_at,
            checkpoint: job.checkpoint.clone(),
        },
        JobServices {
            store: deps.store.clone(),
            objects: deps.objects.clone(),
            progress_interval: config.progress_interval,
        },
        signal.clone(),
    );
    let heartbeat = tokio::spawn(
        heartbeat(
            deps.clone(),
            message.clone(),
            job.id.clone(),
            lease.clone(),
            signal.clone(),
        )
        .instrument(tracing::Span::current()),
    );
    let input = job.input.clone();
    let mut task = tokio::spawn(async move { handler.run(&ctx, &input).await }.instrument(tracing::Span::current()));
    let outcome = tokio::time::timeout_at(stop_at, &mut task).await;
    // Stop the heartbeat for good before the last write and visibility change.
    heartbeat.abort();
    let _ = heartbeat.await;
    let cancelled = signal.reason().is_some_and(|r| r.is(codes::CANCELLED));
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join_error)) => {
            tracing::error!(error = %join_error, "job handler panicked");
            Err(JobError::retryable(codes::HANDLER_PANICKED, "the job handler panicked"))
        }
        Err(_) => {
            task.abort();
            let _ = task.await;
            Err(JobError::retryable(
                codes::DEADLINE,
                "the invocation ran out of time; the job continues from its last checkpoint",
            ))
        }
    };
    let finish_as = match outcome {
        Ok(results) => Finish::Succeeded { results },
        // A cancel seen while running ends it, whatever the handler made of it.
        Err(_) if cancelled => Finish::Cancelled,
        Err(error) if error.is(codes::CANCELLED) => Finish::Cancelled,
        Err(error) if error.is(codes::LEASE_LOST) => {
            tracing::warn!("lease lost mid-run; the new holder finishes the job");
            return Disposition::Delete;
        }
        Err(error) if error.is(codes::DEADLINE) && job_deadline_first => Finish::Failed {
            error: JobError::permanent(codes::JOB_TIMEOUT, "the job ran past its timeout_seconds"),
        },
        Err(error) if error.is(codes::DEADLINE) => return continue_later(deps, message, &job, &lease).await,
        // A panic is a crash: bounded by the queue's maxReceiveCount, not by
        // max_attempts, so a job that always crashes ends in the dead-letter queue.
        Err(error) if error.is(codes::HANDLER_PANICKED) => {
            let backoff = backoff_seconds(config, job.attempts);
            return retry(deps, message, &job, &lease, error, backoff).await;
        }
        Err(error) if error.retryable && job.attempts < job.max_attempts => {
            let backoff = backoff_seconds(config, job.attempts);
            return retry(deps, message, &job, &lease, error, backoff).await;
        }
        Err(error) => Finish::Failed { error },
    };
    finish(deps, &job, &lease, finish_as).await.disposition()
}

/// Keeps a running job's lease and message alive; raises the stop signal
/// when a cancel is requested, when the lease is lost, or when the store has
/// been unreachable for so long that the lease may have expired.
async fn heartbeat(deps: WorkerDeps, message: SqsMessage, id: JobId, lease: Lease, signal: Arc<StopSignal>) {
    let config = &deps.config;
    let mut held_until = lease.expires_at;
    let mut ticks = tokio::time::interval(Duration::from_secs(u64::from(config.heartbeat_seconds)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let now = now_ms();
        let extended = Lease {
            owner: lease.owner.clone(),
            expires_at: now + i64::from(config.lease_seconds) * 1000,
        };
        match deps.store.extend_lease(&id, &extended, now).await {
            Ok(ack) => {
                held_until = extended.expires_at;
                if ack.cancel_requested {
                    signal.cancel();
                }
            }
            Err(StoreError::LeaseLost) => {
                tracing::warn!("heartbeat found the lease lost");
                signal.lease_lost();
                return;
            }
            Err(err) if now_ms() >= held_until => {
                tracing::error!(error = %err, "the lease expired while the store was unreachable; stopping");
                signal.lease_lost();
                return;
            }
            Err(err) => tracing::warn!(error = %err, "heartbeat could not extend the lease"),
        }
        release(&deps, &message, config.heartbeat_visibility_seconds()).await;
    }
}

/// Returns a poison message after a backoff (not the queue's long visibility
/// timeout), so it reaches the dead-letter queue in minutes, not hours.
async fn poison(deps: &WorkerDeps, message: &SqsMessage) -> Disposition {
    let receives: u32 = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    release(deps, message, backoff_seconds(&deps.config, receives)).await;
    Disposition::Return
}

/// A message for a job this worker may not run now.
async fn not_claimable(deps: &WorkerDeps, message: &SqsMessage, job: &JobRecord) -> Disposition {
    let now = now_ms();
    match job.status {
        status if status.is_terminal() => {
            tracing::info!(%status, "duplicate delivery of a finished job; dropping it");
            Disposition::Delete
        }
        JobStatus::Running => {
            // Someone holds a live lease: this is a duplicate. If the holder
            // dies, the reconciler re-enqueues the job when its lease expires.
            tracing::info!(lease_expires_at = ?job.lease_expires_at, "duplicate delivery of a running job; dropping it");
            Disposition::Delete
        }
        _ if job.cancel_requested => {
            // Asked to stop while it ran, then sent back: it ends here.
            match deps
                .store
                .request_cancel(&job.id, now, deps.config.job_retention_seconds)
                .await
            {
                Ok(_) => {
                    tracing::info!("queued job with a cancel request; cancelled");
                    Disposition::Delete
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not cancel; the message will come back");
                    Disposition::Return
                }
            }
        }
        _ => {
            let run_at = job.run_at.unwrap_or(now);
            let wait = ((run_at - now + 999) / 1000).max(1) as u32;
            tracing::info!(wait_seconds = wait, "job not due yet; passing it on until it is");
            pass_on(deps, message, wait).await
        }
    }
}

/// Exponential backoff with equal jitter: between half and all of
/// `base × 2^(attempt−1)`, capped at the maximum.
pub fn backoff_seconds(config: &Config, attempt: u32) -> u32 {
    let exponential = u64::from(config.retry_base_seconds) << attempt.saturating_sub(1).min(20);
    let cap = exponential.min(u64::from(config.retry_max_seconds)).max(1) as u32;
    rand::rng().random_range(cap.div_ceil(2)..=cap)
}

/// Back to QUEUED with a backoff; the message is hidden that long and returned.
async fn retry(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease: &Lease,
    error: JobError,
    backoff: u32,
) -> Disposition {
    tracing::warn!(error = %error, attempt = job.attempts, backoff_seconds = backoff, "retryable failure; backing off");
    let run_at = now_ms() + i64::from(backoff) * 1000;
    let due_at = run_at + deps.config.enqueue_grace_seconds * 1000;
    match finish(deps, job, lease, Finish::Retry { error, run_at, due_at }).await {
        Recorded::Written => {
            release(deps, message, backoff).await;
            Disposition::Return
        }
        Recorded::NotOurs => Disposition::Delete,
        Recorded::StoreFailed => Disposition::Return,
    }
}

/// Seconds between the end of an invocation and the continuation of its job.
const CONTINUE_AFTER_SECONDS: u32 = 1;

/// The invocation ran out of time: the job goes on from its checkpoint in a
/// new invocation, through a new message, so continuations never add up to
/// the old message's receive count (and the dead-letter queue).
async fn continue_later(deps: &WorkerDeps, message: &SqsMessage, job: &JobRecord, lease: &Lease) -> Disposition {
    let run_at = now_ms() + i64::from(CONTINUE_AFTER_SECONDS) * 1000;
    let due_at = run_at + deps.config.enqueue_grace_seconds * 1000;
    match finish(deps, job, lease, Finish::Continue { run_at, due_at }).await {
        Recorded::Written => {
            let fresh = JobMessage {
                job_id: job.id.clone(),
                enqueued_at: now_ms(),
            };
            match deps.queue.enqueue(&job.queue, &fresh, CONTINUE_AFTER_SECONDS).await {
                Ok(()) => {
                    tracing::info!("invocation deadline; the job continues in a new invocation");
                    Disposition::Delete
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not send the continuation; returning the message");
                    release(deps, message, CONTINUE_AFTER_SECONDS).await;
                    Disposition::Return
                }
            }
        }
        Recorded::NotOurs => Disposition::Delete,
        Recorded::StoreFailed => Disposition::Return,
    }
}

/// SQS's longest message delay.
const MAX_DELAY_SECONDS: u32 = 900;

/// A message this invocation will not run (no time left, job not due yet):
/// handed on as a fresh message, delayed `delay_seconds`, so that being
/// passed over never adds up to its receive count (and the dead-letter
/// queue). Returned with that visibility when it cannot be sent (or names no job).
async fn pass_on(deps: &WorkerDeps, message: &SqsMessage, delay_seconds: u32) -> Disposition {
    let job_message = serde_json::from_str::<JobMessage>(message.body.as_deref().unwrap_or(""));
    let queue = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.config.queue_name_for_source(arn));
    if let (Ok(job_message), Some(queue), true) = (job_message, queue, delay_seconds <= MAX_DELAY_SECONDS) {
        let fresh = JobMessage {
            job_id: job_message.job_id,
            enqueued_at: now_ms(),
        };
        match deps.queue.enqueue(queue, &fresh, delay_seconds).await {
            Ok(()) => return Disposition::Delete,
            Err(err) => tracing::warn!(error = %err, "could not pass the message on; returning it"),
        }
    }
    release(deps, message, delay_seconds).await;
    Disposition::Return
}

/// Sets how long the message stays hidden from now (its own queue, from its ARN).
async fn release(deps: &WorkerDeps, message: &SqsMessage, seconds: u32) {
    let Some(receipt) = message.receipt_handle.as_deref() else {
        return;
    };
    let Some(queue) = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.config.queue_name_for_source(arn))
    else {
        tracing::warn!(arn = ?message.event_source_arn, "message from an unknown queue; visibility left as it is");
        return;
    };
    if let Err(err) = deps.queue.change_visibility(queue, receipt, seconds).await {
        tracing::warn!(error = %err, "could not change the message's visibility");
    }
}

/// Whether the end of a run was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    Written,
    /// The lease was taken: the new holder decides.
    NotOurs,
    /// The store failed; the message should come back.
    StoreFailed,
}

impl Recorded {
    fn disposition(self) -> Disposition {
        match self {
            Recorded::Written | Recorded::NotOurs => Disposition::Delete,
            Recorded::StoreFailed => Disposition::Return,
        }
    }
}

/// Writes the end of a run under the lease.
async fn finish(deps: &WorkerDeps, job: &JobRecord, lease: &Lease, finish: Finish) -> Recorded {
    let status = finish.status();
    match deps
        .store
        .finish(
            &job.id,
            &lease.owner,
            &finish,
            now_ms(),
            deps.config.job_retention_seconds,
        )
        .await
    {
        Ok(_) => {
            match &finish {
                Finish::Failed { error } => tracing::warn!(%status, error = %error, "job ended"),
                _ => tracing::info!(%status, attempt = job.attempts, "job ended"),
            }
            Recorded::Written
        }
        Err(StoreError::LeaseLost) => {
            tracing::warn!(%status, "lease lost before the end was written; the new holder decides");
            Recorded::NotOurs
        }
        Err(err) => {
            tracing::error!(error = %err, %status, "could not write the end of the run; the message will come back");
            Recorded::StoreFailed
        }
    }
}

#[cfg(test)]
mod tests;
