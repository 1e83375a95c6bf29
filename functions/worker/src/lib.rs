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
use longrun::jobs::{JobContext, Registry, StopSignal};
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
            tracing::warn!(%message_id, "too little invocation time left to start a job; returning the message");
            Disposition::Return
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
    hide(deps, message, &job, config.heartbeat_visibility_seconds()).await;
    let job_deadline_ms = job.deadline_ms().unwrap_or(i64::MAX);
    if now >= job_deadline_ms {
        let error = JobError::permanent(codes::JOB_TIMEOUT, "the job ran past its timeout_seconds");
        return finish(deps, &job, &lease, Finish::Failed { error }).await;
    }
    let Some(handler) = deps.registry.get(&job.job_type) else {
        let error = JobError::permanent(
            codes::UNKNOWN_JOB_TYPE,
            format!("this worker does not run {:?} jobs", job.job_type),
        );
        return finish(deps, &job, &lease, Finish::Failed { error }).await;
    };

    let invocation_stop_ms = deadline_ms - config.deadline_safety.as_millis() as i64;
    let stop_at_ms = invocation_stop_ms.min(job_deadline_ms);
    let stop_at = tokio::time::Instant::now() + Duration::from_millis((stop_at_ms - now_ms()).max(0) as u64);
    let signal = Arc::new(StopSignal::default());
    let ctx = JobContext::new(
        job.id.clone(),
        job.attempts,
        lease.owner.clone(),
        stop_at,
        deps.store.clone(),
        deps.objects.clone(),
        job.checkpoint.clone(),
        config.progress_interval,
        signal.clone(),
    );
    let heartbeat = tokio::spawn(
        heartbeat(
            deps.clone(),
            message.clone(),
            (*job).clone(),
            lease.owner.clone(),
            signal,
        )
        .instrument(tracing::Span::current()),
    );
    let input = job.input.clone();
    let mut task = tokio::spawn(async move { handler.run(&ctx, &input).await }.instrument(tracing::Span::current()));
    let outcome = tokio::time::timeout_at(stop_at, &mut task).await;
    heartbeat.abort();
    let outcome = match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join_error)) => {
            // A crash: bounded by the queue's maxReceiveCount, not by max_attempts,
            // so a job that always crashes ends in the dead-letter queue.
            tracing::error!(error = %join_error, "job handler panicked");
            let error = JobError::retryable(codes::HANDLER_PANICKED, "the job handler panicked");
            let backoff = backoff_seconds(config, job.attempts);
            return retry(deps, message, &job, &lease, error, backoff).await;
        }
        Err(_) => {
            task.abort();
            if stop_at_ms >= job_deadline_ms {
                Err(JobError::permanent(
                    codes::JOB_TIMEOUT,
                    "the job ran past its timeout_seconds",
                ))
            } else {
                Err(JobError::retryable(
                    codes::DEADLINE,
                    "the invocation ran out of time; the job continues from its last checkpoint",
                ))
            }
        }
    };
    let finish_as = match outcome {
        Ok(results) => Finish::Succeeded { results },
        Err(error) if error.is(codes::CANCELLED) => Finish::Cancelled,
        Err(error) if error.is(codes::LEASE_LOST) => {
            tracing::warn!("lease lost mid-run; the new holder finishes the job");
            return Disposition::Delete;
        }
        // A continuation, not a failure: it does not use up an attempt's backoff.
        Err(error) if error.is(codes::DEADLINE) => return retry(deps, message, &job, &lease, error, 1).await,
        Err(error) if error.retryable && job.attempts < job.max_attempts => {
            let backoff = backoff_seconds(config, job.attempts);
            return retry(deps, message, &job, &lease, error, backoff).await;
        }
        Err(error) => Finish::Failed { error },
    };
    finish(deps, &job, &lease, finish_as).await
}

/// Keeps a running job's lease and message alive; raises the stop signal
/// when a cancel is requested or the lease is lost.
async fn heartbeat(
    deps: WorkerDeps,
    message: SqsMessage,
    job: JobRecord,
    lease_owner: String,
    signal: Arc<StopSignal>,
) {
    let config = &deps.config;
    let mut ticks = tokio::time::interval(Duration::from_secs(u64::from(config.heartbeat_seconds)));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let now = now_ms();
        let lease = Lease {
            owner: lease_owner.clone(),
            expires_at: now + i64::from(config.lease_seconds) * 1000,
        };
        match deps.store.extend_lease(&job.id, &lease, now).await {
            Ok(ack) if ack.cancel_requested => signal.cancel(),
            Ok(_) => {}
            Err(StoreError::LeaseLost) => {
                tracing::warn!("heartbeat found the lease lost");
                signal.lease_lost();
                return;
            }
            Err(err) => tracing::warn!(error = %err, "heartbeat could not extend the lease"),
        }
        hide(&deps, &message, &job, config.heartbeat_visibility_seconds()).await;
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
    let queue = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.config.queue_name_for_source(arn));
    if let (Some(queue), Some(receipt)) = (queue, message.receipt_handle.as_deref()) {
        let backoff = backoff_seconds(&deps.config, receives);
        if let Err(err) = deps.queue.change_visibility(queue, receipt, backoff).await {
            tracing::warn!(error = %err, "could not change the poison message's visibility");
        }
    }
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
        _ => match job.run_at.filter(|&t| t > now) {
            Some(run_at) => {
                let wait = ((run_at - now + 999) / 1000).max(1) as u32;
                tracing::info!(wait_seconds = wait, "job not due yet; hiding the message until it is");
                hide(deps, message, job, wait).await;
                Disposition::Return
            }
            None => {
                // Queued but not claimable: a cancel was requested before it started.
                tracing::info!(
                    cancel_requested = job.cancel_requested,
                    "queued job not claimable; dropping the message"
                );
                Disposition::Delete
            }
        },
    }
}

/// Exponential backoff with equal jitter: between half and all of
/// `base × 2^(attempt−1)`, capped at the maximum.
pub fn backoff_seconds(config: &Config, attempt: u32) -> u32 {
    let exponential = u64::from(config.retry_base_seconds) << attempt.saturating_sub(1).min(20);
    let cap = exponential.min(u64::from(config.retry_max_seconds)).max(1) as u32;
    rand::rng().random_range(cap.div_ceil(2)..=cap)
}

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
    let written = finish(deps, job, lease, Finish::Retry { error, run_at }).await;
    if written == Disposition::Delete {
        // The retry is recorded: hide the message for the backoff and hand it back.
        hide(deps, message, job, backoff).await;
    }
    Disposition::Return
}

async fn hide(deps: &WorkerDeps, message: &SqsMessage, job: &JobRecord, seconds: u32) {
    let Some(receipt) = message.receipt_handle.as_deref() else {
        return;
    };
    let queue = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.config.queue_name_for_source(arn))
        .unwrap_or(&job.queue);
    if let Err(err) = deps.queue.change_visibility(queue, receipt, seconds).await {
        tracing::warn!(error = %err, "could not change the message's visibility");
    }
}

/// Writes the end of a run under the lease. `Delete` when it is recorded (or
/// no longer ours to record), `Return` when the store failed and the message
/// should come back.
async fn finish(deps: &WorkerDeps, job: &JobRecord, lease: &Lease, finish: Finish) -> Disposition {
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
            Disposition::Delete
        }
        Err(StoreError::LeaseLost) => {
            tracing::warn!(%status, "lease lost before the end was written; the new holder decides");
            Disposition::Delete
        }
        Err(err) => {
            tracing::error!(error = %err, %status, "could not write the end of the run; the message will come back");
            Disposition::Return
        }
    }
}

#[cfg(test)]
mod tests;
