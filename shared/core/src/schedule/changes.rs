//! A schedule's timing changed by its owner (or an operator): what moves,
//! and the tick made ahead that must not run after the change.

use super::Schedule;
use crate::ports::JobLifecycle;
use crate::record::JobStatus;

impl Schedule {
    /// The schedule after a change of its timing (cron, rate, zone, start,
    /// end, paused) at `now_ms`: its next tick counted from now, so nothing
    /// missed while paused is made up, and no tick made ahead still waiting
    /// for it ([`cancel_waiting_tick`] cancels that one's job).
    pub fn retimed(mut self, now_ms: i64) -> Schedule {
        self.next_fire_at = self.next_fire_after(now_ms);
        self.last_job_tick_at = self.last_job_tick_at.filter(|t| *t <= now_ms);
        self.updated_at = now_ms;
        self
    }
}

/// Cancels the job of a tick `schedule` made ahead, while it still waits
/// for its tick (QUEUED, never started): paused, re-timed or deleted, the
/// schedule must not run it. Best effort: a failure is logged, and the job
/// runs at its tick.
pub async fn cancel_waiting_tick(store: &dyn JobLifecycle, schedule: &Schedule, now_ms: i64) {
    if let Some(job_id) = schedule.job_waiting_for_tick(now_ms) {
        cancel_unstarted_tick_job(store, job_id, now_ms).await;
    }
}

/// Cancels tick job `job_id` if it is still QUEUED and never started.
/// Best effort: a failure is logged, and the job runs at its tick.
pub async fn cancel_unstarted_tick_job(store: &dyn JobLifecycle, job_id: &crate::JobId, now_ms: i64) {
    match store.get(job_id).await {
        Ok(Some(job)) if job.status == JobStatus::Queued && job.started_at.is_none() => {
            match store.request_cancel(job_id, now_ms).await {
                Ok(_) => tracing::info!(job_id = %job_id, "cancelled the job of a tick made ahead"),
                Err(err) => tracing::warn!(job_id = %job_id, error = %err, "could not cancel the tick's waiting job"),
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(job_id = %job_id, error = %err, "could not read the tick's waiting job"),
    }
}

/// How often a change of a schedule is applied again to a fresh read when
/// the scheduler pass (or another change) moved the schedule under it. A
/// caller sends no version, so a change that lost a race is not the
/// caller's conflict: only this many losses in a row are.
pub const CHANGE_TRIES: usize = 5;
