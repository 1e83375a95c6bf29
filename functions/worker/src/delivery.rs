//! What becomes of a message: acknowledged (the event source mapping
//! deletes it), redelivered after a visibility timeout the worker sets, or
//! passed on as a fresh message. Poison and passed-over messages are handled
//! here so that neither adds up to the dead-letter queue by accident.

use aws_lambda_events::sqs::SqsMessage;
use longrun_core::ports::JobMessage;
use longrun_core::time::now_ms;

use crate::decide::backoff_seconds;
use crate::WorkerDeps;

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done with: the event source mapping deletes it.
    Ack,
    /// Reported as a batch item failure: it comes back when its visibility
    /// timeout (as last set) runs out, one receive closer to the dead-letter queue.
    Redeliver,
}

/// SQS's longest message delay (`DelaySeconds`), not `MAX_DELAY_SECONDS`.
const SQS_MAX_DELAY_SECONDS: u32 = 900;

/// Redelivers a poison message after a backoff (not the queue's long
/// visibility timeout), so it reaches the dead-letter queue in minutes, not hours.
pub(crate) async fn poison(deps: &WorkerDeps, message: &SqsMessage) -> Disposition {
    let receives: u32 = message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    hide_for(deps, message, backoff_seconds(&deps.config, receives)).await;
    Disposition::Redeliver
}

/// A message this invocation will not run now (no time left, job not due
/// yet, a retry's backoff, a store fault): handed on as a fresh message,
/// delayed `delay_seconds` (at most SQS's 900: a job still not due then is
/// passed on again), so that being passed over never adds up to its receive
/// count (and the dead-letter queue). The fresh message keeps the job's
/// generation. When the fresh message cannot be sent, the old one is still
/// acknowledged: the job's record is in the due index (QUEUED or RUNNING,
/// with a `due_at`), so the reconciler sends it once it is overdue, and a
/// queue outage never walks a job to the dead-letter queue. A message that
/// names no job is redelivered with that visibility.
pub(crate) async fn pass_on(deps: &WorkerDeps, message: &SqsMessage, delay_seconds: u32) -> Disposition {
    let delay_seconds = delay_seconds.min(SQS_MAX_DELAY_SECONDS);
    let job_message = serde_json::from_str::<JobMessage>(message.body.as_deref().unwrap_or(""));
    let queue = message
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.config.queue_name_for_source(arn));
    if let (Ok(job_message), Some(queue)) = (job_message, queue) {
        let fresh = JobMessage {
            enqueued_at: now_ms(),
            ..job_message
        };
        return match deps.queue.enqueue(queue, &fresh, delay_seconds).await {
            Ok(()) => Disposition::Ack,
            Err(err) => {
                tracing::warn!(error = %err, "could not pass the message on; the reconciler sends it once it is overdue");
                Disposition::Ack
            }
        };
    }
    hide_for(deps, message, delay_seconds).await;
    Disposition::Redeliver
}

/// A store fault before the run (claim, cancel): the message is passed on
/// after a short backoff rather than redelivered, so a store outage never
/// walks a healthy job to the dead-letter queue.
pub(crate) async fn pass_on_after_store_fault(deps: &WorkerDeps, message: &SqsMessage) -> Disposition {
    pass_on(deps, message, backoff_seconds(&deps.config, 1)).await
}

/// Hides the message for `seconds` from now (its visibility timeout, on its
/// own queue, found from its ARN); a failure is logged and left: the
/// message then comes back when its current timeout runs out.
pub(crate) async fn hide_for(deps: &WorkerDeps, message: &SqsMessage, seconds: u32) {
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
