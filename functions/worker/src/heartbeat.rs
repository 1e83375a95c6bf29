//! The heartbeat beside a running job. Every `HEARTBEAT_SECONDS` it extends
//! the job's lease (and `due_at`) and then, only once the lease is extended,
//! hides the message as long again. When the extension's answer says a
//! cancel was requested, it raises the job's stop signal and ends the run.
//!
//! A job under a limit keeps its limit slot as long as its lease, right
//! after each extension of the lease; the run's time (`held_until`) is the
//! earlier of the two, so a run whose slot could not be kept stops before
//! the slot lapses, as at a lease that could not be extended.
//!
//! It ends, and with it the run ([`RunEnd::CancelRequested`],
//! [`RunEnd::LeaseLost`] or [`RunEnd::LeaseLapsing`]), at a cancel request, when the lease is lost
//! (another worker holds the job) or about to lapse: when extending failed
//! (a store error, or a call that hangs: every attempt is bounded by the
//! time the lease has left) until [`lapse_margin_ms`] before the lease's
//! expiry, the run stops there, before any other worker may claim the job,
//! not at the next tick after a failed call.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsMessage;
use longrun_core::job_types::StopSignal;
use longrun_core::ports::StoreError;
use longrun_core::record::Lease;
use longrun_core::time::now_ms;
use longrun_core::JobId;

use crate::decide::RunEnd;
use crate::delivery::hide_for;
use crate::WorkerDeps;

/// How long before its lease expires a run whose lease could not be
/// extended stops: a quarter of the lease, at most 5 s. Stopping before the
/// expiry leaves room for clock skew between this worker and the next one.
pub(crate) fn lapse_margin_ms(lease_seconds: u32) -> i64 {
    (i64::from(lease_seconds) * 1000 / 4).min(5_000)
}

/// How soon a failed extension is tried again.
const RETRY_EXTENSION_MS: i64 = 1_000;

/// Runs until aborted (the run ended) or until it stops the run, with
/// the lease's end.
/// `held_until` is the lease's current expiry, shared with the run (which
/// fences its result writes by it); the heartbeat moves it on.
pub(crate) async fn heartbeat(
    deps: WorkerDeps,
    message: SqsMessage,
    id: JobId,
    lease: Lease,
    signal: Arc<StopSignal>,
    held_until: Arc<AtomicI64>,
    limit: Option<String>,
) -> RunEnd {
    let mut slot_until = held_until.load(Ordering::SeqCst);
    let config = &deps.config;
    let interval_ms = i64::from(config.heartbeat_seconds) * 1000;
    let margin_ms = lapse_margin_ms(config.lease_seconds);
    let mut next_at = now_ms() + interval_ms;
    loop {
        let lease_expires_at = held_until.load(Ordering::SeqCst);
        let lapse_at = lease_expires_at - margin_ms;
        sleep_until_ms(next_at.min(lapse_at)).await;
        let now = now_ms();
        if now >= lapse_at {
            tracing::error!(
                lease_expires_at,
                "the lease could not be extended and is about to lapse; stopping the run"
            );
            signal.lease_lost();
            return RunEnd::LeaseLapsing { lease_expires_at };
        }
        let extended = Lease {
            token: lease.token.clone(),
            expires_at: now + i64::from(config.lease_seconds) * 1000,
        };
        let attempt = tokio::time::timeout(
            Duration::from_millis((lapse_at - now).max(0) as u64),
            deps.store.extend_lease(&id, &extended, now),
        );
        match attempt.await {
            Ok(Ok(ack)) => {
                if let Some(key) = &limit {
                    if crate::limit_gate::keep(&deps, key, &id, &lease.token, extended.expires_at, now_ms()).await {
                        slot_until = extended.expires_at;
                    }
                } else {
                    slot_until = extended.expires_at;
                }
                held_until.store(extended.expires_at.min(slot_until), Ordering::SeqCst);
                if ack.cancel_requested {
                    // The run ends here, whether its handler looks at its
                    // signal or not (it is aborted, as at a lost lease).
                    tracing::info!("cancel requested; stopping the run");
                    signal.cancel();
                    return RunEnd::CancelRequested;
                }
                next_at = now + interval_ms;
                // Only now: a message whose job's lease was not extended must
                // not be hidden past the lease.
                let remaining = Duration::from_millis((extended.expires_at - margin_ms - now_ms()).max(0) as u64);
                let _ = tokio::time::timeout(
                    remaining,
                    hide_for(&deps, &message, config.heartbeat_visibility_seconds()),
                )
                .await;
            }
            Ok(Err(StoreError::LeaseLost)) => {
                tracing::warn!("heartbeat found the lease lost");
                signal.lease_lost();
                return RunEnd::LeaseLost;
            }
            Ok(Err(err)) => {
                tracing::warn!(error = %err, lease_expires_at, "heartbeat could not extend the lease; trying again");
                next_at = now_ms() + RETRY_EXTENSION_MS;
            }
            Err(_) => {
                tracing::warn!(lease_expires_at, "heartbeat's lease extension did not answer in time");
                next_at = now_ms();
            }
        }
    }
}

async fn sleep_until_ms(at_ms: i64) {
    let wait = (at_ms - now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_quarter_of_the_lease_at_most_five_seconds() {
        assert_eq!(lapse_margin_ms(4), 1_000);
        assert_eq!(lapse_margin_ms(60), 5_000);
        assert_eq!(lapse_margin_ms(8), 2_000);
    }
}
