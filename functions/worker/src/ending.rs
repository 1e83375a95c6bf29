//! Writing the end of a run under the lease, and what that means for the
//! message: a terminal end acknowledges it; a retry hands the job on as a
//! fresh message delayed by the backoff (a crash instead redelivers the
//! message itself, so crashes count towards the dead-letter queue); a
//! continuation sends a fresh message and acknowledges the old one. A write
//! fenced off by a lost lease leaves the job to its new holder. A write that
//! fails on a store fault is tried again while the lease lasts; if it still
//! fails, the job comes back as a fresh message just after its lease
//! expires, to be taken over (which uses no attempt).

use std::time::Duration;

use aws_lambda_events::sqs::SqsMessage;
use longrun_core::chain::{next_job_id, next_step};
use longrun_core::metrics;
use longrun_core::ports::{JobMessage, StoreError};
use longrun_core::record::{codes, Finish, JobError, Lease};
use longrun_core::time::now_ms;
use longrun_core::webhook::announce_end;
use longrun_core::JobRecord;
use tracing::Instrument;

use crate::delivery::{hide_for, pass_on, Disposition};
use crate::heartbeat::lapse_margin_ms;
use crate::WorkerDeps;

/// Waits between tries of an end that failed on a store fault.
const FINISH_RETRY_WAITS_MS: [u64; 3] = [200, 500, 1_000];

/// Writes the end of a run under the lease, trying again on a store fault
/// while the lease leaves time (the SDK's own retries come first): the
/// record as written, [`StoreError::LeaseLost`] when another worker took the
/// lease (the new holder decides), or the store's last fault.
pub(crate) async fn finish(
    deps: &WorkerDeps,
    job: &JobRecord,
    lease: &Lease,
    finish: Finish,
) -> Result<Box<JobRecord>, StoreError> {
    let status = finish.status();
    let give_up_at = lease.expires_at - lapse_margin_ms(deps.config.lease_seconds);
    let mut waits = FINISH_RETRY_WAITS_MS.iter();
    loop {
        match deps.store.finish(&job.id, &lease.token, &finish, now_ms()).await {
            Ok(written) => {
                match &finish {
                    Finish::Failed { error } => tracing::warn!(%status, error = %error, "job ended"),
                    _ => tracing::info!(%status, attempt = job.attempts, "job ended"),
                }
                return Ok(Box::new(written));
            }
            Err(StoreError::LeaseLost) => {
                tracing::warn!(%status, "lease lost before the end was written; the new holder decides");
                return Err(StoreError::LeaseLost);
            }
            Err(err) => match waits.next() {
                Some(&wait) if now_ms() + wait as i64 <= give_up_at => {
                    tracing::warn!(error = %err, %status, wait_ms = wait, "could not write the end of the run; trying again");
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                _ => {
                    tracing::error!(error = %err, %status, "could not write the end of the run");
                    return Err(err);
                }
            },
        }
    }
}

/// Writes a terminal end (or any end whose message needs nothing more) and
/// settles the message accordingly. A job with a callback is announced to
/// the webhook queue first (an end is never written unannounced); a chain
/// step that succeeded creates its next step in the same write, then sends it.
pub(crate) async fn end(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease: &Lease,
    end: Finish,
) -> Disposition {
    let end = with_next_step(deps, job, end);
    if end.status().is_terminal() {
        if let Err(err) = announce_end(deps.queue.as_ref(), job, now_ms()).await {
            tracing::warn!(error = %err, "could not announce the end to the webhook queue");
            return return_after_lease(deps, message, job, lease.expires_at).await;
        }
    }
    let next = match &end {
        Finish::Succeeded { next: Some(next), .. } => Some(next.clone()),
        _ => None,
    };
    match finish(deps, job, lease, end).await {
        Ok(written) => {
            metrics::run_ended(job, run_ms(job));
            // A cancel request that came first stopped the chain: no next
            // step was created, so none is sent.
            if let Some(next) = next.filter(|n| next_job_id(&written).as_ref() == Some(&n.id)) {
                send_next_step(deps, &next).await;
            }
            Disposition::Ack
        }
        Err(StoreError::LeaseLost) => Disposition::Ack,
        Err(_) => return_after_lease(deps, message, job, lease.expires_at).await,
    }
}

/// How long the run has taken: since its claim (the claimed record's
/// `updated_at`; the run keeps that record, not later writes).
fn run_ms(claimed: &JobRecord) -> i64 {
    now_ms() - claimed.updated_at
}

/// `end` with the next step of `job`'s chain in it, when it is a success
/// with steps left.
fn with_next_step(deps: &WorkerDeps, job: &JobRecord, end: Finish) -> Finish {
    let Finish::Succeeded { results, next: None } = end else {
        return end;
    };
    let config = &deps.config;
    let next = job.chain.as_ref().and_then(|link| link.then.first()).and_then(|step| {
        let queue = config.queue_for_priority(&step.job_type, job.priority);
        let live_seconds = config.job_retention_seconds + i64::from(config.max_job_timeout_seconds);
        let mut next = next_step(job, &results, queue, now_ms(), live_seconds, config.enqueue_grace_ms())?;
        // The step runs under its own type's limit, as a submit of it would.
        let of_type = deps.registry.get(&next.job_type).and_then(|h| h.limit(&next.input));
        next.limit = longrun_core::limits::resolve(&config.limits, of_type, None, &next.owner)
            .ok()
            .flatten();
        Some(next)
    });
    Finish::Succeeded {
        results,
        next: next.map(Box::new),
    }
}

/// Sends a chain's next step, created with its predecessor's end. A lost
/// send costs only time: the step is QUEUED and due, so the reconciler
/// sends it after the enqueue grace.
async fn send_next_step(deps: &WorkerDeps, next: &JobRecord) {
    let span = tracing::info_span!("chain_step", job_id = %next.id);
    async {
        match deps
            .queue
            .enqueue(&next.queue, &JobMessage::for_job(next, now_ms()), 0)
            .await
        {
            Ok(()) => tracing::info!(job_type = %next.job_type, "next step of the chain queued"),
            Err(err) => tracing::warn!(error = %err, "could not send the next step; the reconciler sends it"),
        }
    }
    .instrument(span)
    .await
}

/// The run stops without writing its end (the store is unreachable): the
/// record still says RUNNING under this run's lease until
/// `lease_expires_at`. The job is passed on to come back one second after
/// that, when the next worker may take it over, instead of waiting for the
/// reconciler or the message's own visibility timeout (and a receive).
pub(crate) async fn return_after_lease(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease_expires_at: i64,
) -> Disposition {
    let wait_ms = (lease_expires_at - now_ms()).max(0);
    let delay = (wait_ms / 1000 + 1) as u32;
    tracing::warn!(
        lease_expires_at,
        status = %job.status,
        delay_seconds = delay,
        "the run could not record its end; the job comes back once its lease expires"
    );
    pass_on(deps, message, delay).await
}

/// Back to QUEUED with a backoff. A retryable error hands the job on as a
/// fresh message delayed by the backoff, so retries never add up to the
/// message's receive count; a crash (`handler_panicked`) hides the message
/// itself for the backoff and redelivers it, so that crashes, and only
/// they, reach the dead-letter queue after `maxReceiveCount`.
pub(crate) async fn retry(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease: &Lease,
    error: JobError,
    backoff: u32,
) -> Disposition {
    tracing::warn!(error = %error, attempt = job.attempts, backoff_seconds = backoff, "retryable failure; backing off");
    let crashed = error.is(codes::HANDLER_PANICKED);
    let run_at = now_ms() + i64::from(backoff) * 1000;
    let due_at = run_at + deps.config.enqueue_grace_ms();
    let recorded = finish(deps, job, lease, Finish::Retry { error, run_at, due_at }).await;
    if recorded.is_ok() {
        metrics::run_ended(job, run_ms(job));
        metrics::retried(job);
    }
    match recorded {
        Ok(_) if crashed => {
            hide_for(deps, message, backoff).await;
            Disposition::Redeliver
        }
        Ok(_) => pass_on(deps, message, backoff).await,
        Err(StoreError::LeaseLost) => Disposition::Ack,
        Err(_) => return_after_lease(deps, message, job, lease.expires_at).await,
    }
}

/// Seconds between the end of an invocation and the continuation of its job.
const CONTINUE_AFTER_SECONDS: u32 = 1;

/// The invocation ran out of time: the job goes on from its checkpoint in a
/// new invocation, through a new message, so continuations never add up to
/// the old message's receive count (and the dead-letter queue). A job
/// promoted (`next.queue`) moves to that queue in the same write, and its
/// message goes there.
pub(crate) async fn continue_later(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease: &Lease,
    next: crate::ContinueIn,
) -> Disposition {
    let run_at = now_ms() + i64::from(CONTINUE_AFTER_SECONDS) * 1000;
    let due_at = run_at + deps.config.enqueue_grace_ms();
    let queue = next.queue.clone().unwrap_or_else(|| job.queue.clone());
    let continuation = Finish::Continuation {
        run_at,
        due_at,
        stalled_runs: next.stalled_runs,
        queue: next.queue.clone(),
    };
    match finish(deps, job, lease, continuation).await {
        Ok(_) => {
            metrics::run_ended(job, run_ms(job));
            metrics::continued(job);
            if next.queue.is_some() {
                metrics::promoted(job);
            }
            let fresh = JobMessage::for_job(job, now_ms());
            match deps.queue.enqueue(&queue, &fresh, CONTINUE_AFTER_SECONDS).await {
                Ok(()) => {
                    tracing::info!(from = %job.queue, to = %queue, "invocation deadline; the job continues in a new invocation");
                    Disposition::Ack
                }
                // QUEUED and due: the reconciler sends it once it is overdue,
                // and the old message is done with (a queue outage must not
                // add up to its receive count).
                Err(err) => {
                    tracing::warn!(error = %err, "could not send the continuation; the reconciler sends it once it is overdue");
                    Disposition::Ack
                }
            }
        }
        Err(StoreError::LeaseLost) => Disposition::Ack,
        Err(_) => return_after_lease(deps, message, job, lease.expires_at).await,
    }
}
