//! A schedule's timing changed by its owner (or an operator): what moves,
//! and the tick made ahead that must not run after the change.

use std::future::Future;

use super::Schedule;
use crate::ports::{JobLifecycle, JobStore, StoreError};
use crate::record::JobStatus;

impl Schedule {
    /// Whether `changed` times its ticks otherwise than `self` (cron, rate,
    /// zone, start, end, paused): then the change retimes it.
    pub fn timing_differs(&self, changed: &Schedule) -> bool {
        let timing = |s: &Schedule| {
            (
                s.cron.clone(),
                s.rate.clone(),
                s.timezone.clone(),
                s.start_at,
                s.end_at,
                s.paused,
            )
        };
        timing(self) != timing(changed)
    }

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

/// Why [`change_schedule`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError<E> {
    /// There is no such schedule (or it was deleted under the change).
    #[error("no such schedule")]
    Missing,
    /// The change refused what it read.
    #[error("{0}")]
    Refused(E),
    /// It lost [`CHANGE_TRIES`] races in a row.
    #[error("the schedule kept changing while this change was made; read it and try again")]
    KeptChanging,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`change_schedule`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Changed {
    /// Written: the schedule as stored now (its version counted on).
    Written(Schedule),
    /// The change left the schedule as it was; nothing was written.
    AlreadySo(Schedule),
}

/// Changes schedule `id` with `apply`, which gets a fresh read and the time
/// of this try and answers the schedule changed (`None`: nothing to
/// change), or refuses. The change is written only over the version it was
/// made from; when the scheduler pass (or another change) moved the
/// schedule first, it is made again from a fresh read, up to
/// [`CHANGE_TRIES`] times (a caller sends no version, so losing that race
/// is not its conflict). A change of timing is retimed here
/// ([`Schedule::retimed`]), and once it is written, the tick job made ahead
/// for the old timing is cancelled.
pub async fn change_schedule<E, F, Fut>(store: &dyn JobStore, id: &str, mut apply: F) -> Result<Changed, ChangeError<E>>
where
    F: FnMut(Schedule, i64) -> Fut,
    Fut: Future<Output = Result<Option<Schedule>, E>>,
{
    for _ in 0..CHANGE_TRIES {
        let stored = store.get_schedule(id).await?.ok_or(ChangeError::Missing)?;
        let now = crate::time::now_ms();
        let Some(changed) = apply(stored.clone(), now).await.map_err(ChangeError::Refused)? else {
            return Ok(Changed::AlreadySo(stored));
        };
        let retimed = stored.timing_differs(&changed);
        let changed = Schedule {
            updated_at: now,
            ..if retimed { changed.retimed(now) } else { changed }
        };
        if store.replace_schedule(&changed, stored.version).await? {
            if retimed {
                // The tick made ahead for the old timing must not run.
                cancel_waiting_tick(store, &stored, now).await;
            }
            tracing::info!(schedule_id = %id, paused = changed.paused, next_fire_at = ?changed.next_fire_at, "schedule changed");
            return Ok(Changed::Written(Schedule {
                version: stored.version + 1,
                ..changed
            }));
        }
        tracing::info!(schedule_id = %id, "the schedule moved under this change; making it again");
    }
    Err(ChangeError::KeptChanging)
}
