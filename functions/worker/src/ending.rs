//! Writing the end of a run under the lease, and what that means for the
//! message: a terminal end acknowledges it; a retry hides it for the backoff
//! and redelivers it; a continuation sends a fresh message and acknowledges
//! the old one. A write fenced off by a lost lease leaves the job to its new
//! holder; a store failure redelivers the message.

use aws_lambda_events::sqs::SqsMessage;
use longrun::ports::{JobMessage, StoreError};
use longrun::record::{Finish, JobError, Lease};
use longrun::time::now_ms;
use longrun::JobRecord;

use crate::delivery::{hide_for, Disposition};
use crate::WorkerDeps;

/// Whether the end of a run was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    Written,
    /// The lease was taken: the new holder decides.
    NotOurs,
    /// The store failed; the message should come back.
    StoreFailed,
}

impl Recorded {
    pub(crate) fn disposition(self) -> Disposition {
        match self {
            Recorded::Written | Recorded::NotOurs => Disposition::Ack,
            Recorded::StoreFailed => Disposition::Redeliver,
        }
    }
}

/// Writes the end of a run under the lease.
pub(crate) async fn finish(deps: &WorkerDeps, job: &JobRecord, lease: &Lease, finish: Finish) -> Recorded {
    let status = finish.status();
    match deps.store.finish(&job.id, &lease.owner, &finish, now_ms()).await {
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

/// Back to QUEUED with a backoff; the message is hidden that long and redelivered.
pub(crate) async fn retry(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease: &Lease,
    error: JobError,
    backoff: u32,
) -> Disposition {
    tracing::warn!(error = %error, attempt = job.attempts, backoff_seconds = backoff, "retryable failure; backing off");
    let run_at = now_ms() + i64::from(backoff) * 1000;
    let due_at = run_at + deps.config.enqueue_grace_ms();
    match finish(deps, job, lease, Finish::Retry { error, run_at, due_at }).await {
        Recorded::Written => {
            hide_for(deps, message, backoff).await;
            Disposition::Redeliver
        }
        Recorded::NotOurs => Disposition::Ack,
        Recorded::StoreFailed => Disposition::Redeliver,
    }
}

/// Seconds between the end of an invocation and the continuation of its job.
const CONTINUE_AFTER_SECONDS: u32 = 1;

/// The invocation ran out of time: the job goes on from its checkpoint in a
/// new invocation, through a new message, so continuations never add up to
/// the old message's receive count (and the dead-letter queue).
pub(crate) async fn continue_later(
    deps: &WorkerDeps,
    message: &SqsMessage,
    job: &JobRecord,
    lease: &Lease,
    stalled_runs: u32,
) -> Disposition {
    let run_at = now_ms() + i64::from(CONTINUE_AFTER_SECONDS) * 1000;
    let due_at = run_at + deps.config.enqueue_grace_ms();
    let continuation = Finish::Continuation {
        run_at,
        due_at,
        stalled_runs,
    };
    match finish(deps, job, lease, continuation).await {
        Recorded::Written => {
            let fresh = JobMessage {
                job_id: job.id.clone(),
                enqueued_at: now_ms(),
            };
            match deps.queue.enqueue(&job.queue, &fresh, CONTINUE_AFTER_SECONDS).await {
                Ok(()) => {
                    tracing::info!("invocation deadline; the job continues in a new invocation");
                    Disposition::Ack
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not send the continuation; redelivering the message");
                    hide_for(deps, message, CONTINUE_AFTER_SECONDS).await;
                    Disposition::Redeliver
                }
            }
        }
        Recorded::NotOurs => Disposition::Ack,
        Recorded::StoreFailed => Disposition::Redeliver,
    }
}
