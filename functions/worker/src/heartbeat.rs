//! The heartbeat beside a running job: every `HEARTBEAT_SECONDS` it extends
//! the job's lease (and `due_at`) and hides its message as long again, and
//! raises the job's stop signal when a cancel is requested, when the lease
//! is lost, or when the store has been unreachable so long that the lease
//! may have expired.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsMessage;
use longrun::job_types::StopSignal;
use longrun::ports::StoreError;
use longrun::record::Lease;
use longrun::time::now_ms;
use longrun::JobId;

use crate::delivery::hide_for;
use crate::WorkerDeps;

/// Runs until aborted (the run ended) or until it stops the job.
pub(crate) async fn heartbeat(deps: WorkerDeps, message: SqsMessage, id: JobId, lease: Lease, signal: Arc<StopSignal>) {
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
        hide_for(&deps, &message, config.heartbeat_visibility_seconds()).await;
    }
}
