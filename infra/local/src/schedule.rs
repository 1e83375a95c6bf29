//! Plays EventBridge schedules: invokes a scheduled function every period
//! (the first time one period after start), one invocation at a time.

use std::sync::Arc;
use std::time::Duration;

use longrun_core::time::now_ms;

use crate::functions::LocalFunction;

/// Starts the schedule; it runs until the process ends.
pub fn start(function: Arc<LocalFunction>, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(scheduled) = function.scheduled().cloned() else {
                tracing::error!(function = %function.spec.logical_id, "not a scheduled function");
                return;
            };
            let name = function.spec.logical_id.clone();
            let invocation = tokio::spawn(async move {
                match scheduled.call(now_ms()).await {
                    Ok(report) => tracing::debug!(function = %name, %report, "scheduled function ran"),
                    Err(err) => tracing::error!(function = %name, error = %err, "scheduled function failed"),
                }
            });
            let timeout = Duration::from_secs(u64::from(function.spec.timeout_seconds));
            if tokio::time::timeout(timeout, invocation).await.is_err() {
                tracing::error!("scheduled invocation timed out");
            }
        }
    })
}
