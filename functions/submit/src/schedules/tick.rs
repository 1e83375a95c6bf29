//! The scheduler pass (`LONGRUN_FUNCTION=scheduler`, every
//! `SchedulerSchedule`): the schedules whose tick is near get their tick's
//! job, submitted through the same admission as `POST /jobs` (the job type
//! and input checked again, the owner's quota, the callback guard).
//!
//! One tick per schedule per pass, in this order: the job (its id derived
//! from schedule and tick time, so a repeated tick finds it made), then the
//! schedule moved on under the version it was read at. A pass that dies
//! between the two leaves the schedule due, and the next pass finds the job
//! already made and only moves the schedule on: one job per tick, however
//! often a tick is tried.

use std::sync::Arc;

use longrun_core::record::ScheduleTick;
use longrun_core::schedule::{
    cancel_unstarted_tick_job, Overlap, RunOutcome, Schedule, ScheduleRun, TICK_LOOKAHEAD_MS,
};
use longrun_core::JobId;
use longrun_lambda::{BoxError, ScheduledFunction};
use serde::Serialize;
use tracing::Instrument;

use crate::quota::create_within_quota;
use crate::request::{check_callback, validate};
use crate::SubmitDeps;

/// Schedules one pass looks at, at most; the rest wait for the next.
pub const MAX_SCHEDULES_PER_PASS: usize = 500;

/// The scheduler: submit's dependencies, driven by a timer.
#[derive(Clone)]
pub struct SchedulerDeps(pub SubmitDeps);

impl SchedulerDeps {
    /// The production wiring (the app's job types, as submit's).
    pub fn from_aws(
        config: Arc<longrun_core::Config>,
        clients: &longrun_aws::AwsClients,
        registry: Arc<longrun_core::job_types::Registry>,
    ) -> Self {
        SchedulerDeps(SubmitDeps::from_aws(config, clients, registry))
    }
}

#[longrun_core::async_trait]
impl ScheduledFunction for SchedulerDeps {
    async fn call(&self, now_ms: i64) -> Result<serde_json::Value, BoxError> {
        Ok(serde_json::to_value(pass(&self.0, now_ms).await?)?)
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Schedules found due.
    pub due: usize,
    /// Ticks that submitted their job (or found it made).
    pub submitted: usize,
    /// Ticks skipped because the last job still ran.
    pub skipped: usize,
    /// Ticks whose job was refused.
    pub refused: usize,
    /// Schedules changed under the pass (by their owner, or another pass):
    /// the next pass looks again.
    pub raced: usize,
    /// Schedules that failed on a store fault; the next pass tries again.
    pub failed: usize,
}

/// One pass at `now_ms` over the due schedules.
pub async fn pass(deps: &SubmitDeps, now_ms: i64) -> Result<PassReport, longrun_core::ports::StoreError> {
    let due = deps.store.due_schedules(now_ms, MAX_SCHEDULES_PER_PASS).await?;
    let mut report = PassReport {
        due: due.len(),
        ..PassReport::default()
    };
    for id in due {
        let span = tracing::info_span!("schedule_tick", schedule_id = %id);
        match tick(deps, &id, now_ms).instrument(span).await {
            Ok(Some((outcome, true))) => match outcome {
                RunOutcome::Submitted => report.submitted += 1,
                RunOutcome::Skipped => report.skipped += 1,
                RunOutcome::Refused => report.refused += 1,
            },
            Ok(Some((_, false))) => report.raced += 1,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(schedule_id = %id, error = %err, "schedule tick failed; the next pass tries again");
                report.failed += 1;
            }
        }
    }
    if report.due > 0 {
        tracing::info!(?report, "scheduler pass");
    }
    Ok(report)
}

/// Makes schedule `id`'s due tick, if it has one: what the tick did, and
/// whether the schedule was moved on (`false`: it changed under the pass).
pub async fn tick(
    deps: &SubmitDeps,
    id: &str,
    now_ms: i64,
) -> Result<Option<(RunOutcome, bool)>, longrun_core::ports::StoreError> {
    let Some(schedule) = deps.store.get_schedule(id).await? else {
        return Ok(None);
    };
    let Some(tick_at) = schedule.due_tick(now_ms, TICK_LOOKAHEAD_MS) else {
        return Ok(None);
    };
    let run = match still_running(deps, &schedule).await? {
        Some(previous) => ScheduleRun {
            tick_at,
            outcome: RunOutcome::Skipped,
            job_id: None,
            detail: Some(format!("the last job {previous} had not ended")),
        },
        None => submit_tick(deps, &schedule, tick_at, now_ms).await?,
    };
    let outcome = run.outcome;
    tracing::info!(tick_at, outcome = outcome.as_str(), job_id = ?run.job_id, "schedule ticked");
    let made = run.job_id.clone();
    let moved = deps
        .store
        .replace_schedule(&schedule.after_tick(run, now_ms), schedule.version)
        .await?;
    if !moved && tick_at > now_ms {
        if let Some(job_id) = made {
            unmake_if_unwanted(deps, id, &job_id, tick_at, now_ms).await?;
        }
    }
    Ok(Some((outcome, moved)))
}

/// The schedule changed while this pass made tick `tick_at`'s job ahead of
/// its time. When the change paused, retimed or deleted it, so that the
/// schedule no longer leads to that tick and did not record the job, the
/// job is cancelled before it starts; otherwise the next pass records it.
async fn unmake_if_unwanted(
    deps: &SubmitDeps,
    id: &str,
    job_id: &JobId,
    tick_at: i64,
    now_ms: i64,
) -> Result<(), longrun_core::ports::StoreError> {
    let fresh = deps.store.get_schedule(id).await?;
    let wanted = fresh.is_some_and(|s| {
        s.recent_runs.iter().any(|r| r.job_id.as_ref() == Some(job_id))
            || (!s.paused && s.next_fire_at == Some(tick_at))
    });
    if !wanted {
        tracing::info!(job_id = %job_id, tick_at, "the schedule changed under its tick; the tick's job is cancelled");
        cancel_unstarted_tick_job(deps.store.as_ref(), job_id, now_ms).await;
    }
    Ok(())
}

/// With `overlap: skip`, the last tick's job when it has not ended.
async fn still_running(
    deps: &SubmitDeps,
    schedule: &Schedule,
) -> Result<Option<JobId>, longrun_core::ports::StoreError> {
    if schedule.overlap != Overlap::Skip {
        return Ok(None);
    }
    let Some(previous) = &schedule.last_job_id else {
        return Ok(None);
    };
    Ok(match deps.store.get(previous).await? {
        Some(job) if !job.status.is_terminal() => Some(previous.clone()),
        _ => None,
    })
}

/// Submits the tick's job, or finds it made by an earlier try.
async fn submit_tick(
    deps: &SubmitDeps,
    schedule: &Schedule,
    tick_at: i64,
    now_ms: i64,
) -> Result<ScheduleRun, longrun_core::ports::StoreError> {
    let job_id = JobId::for_schedule_tick(&schedule.id, tick_at);
    let run = |outcome, detail: Option<String>| ScheduleRun {
        tick_at,
        outcome,
        job_id: (outcome == RunOutcome::Submitted).then(|| job_id.clone()),
        detail,
    };
    if deps.store.get(&job_id).await?.is_some() {
        return Ok(run(RunOutcome::Submitted, None));
    }
    let admitted = async {
        let mut job = validate(deps, schedule.job.clone(), job_id.clone(), &schedule.owner)?;
        check_callback(deps, &job).await?;
        job.run_at = (tick_at > now_ms).then_some(tick_at);
        job.schedule = Some(ScheduleTick {
            schedule_id: schedule.id.clone(),
            tick_at,
        });
        create_within_quota(deps, job, true).await
    };
    Ok(match admitted.await {
        Ok(crate::Submitted::Accepted(job)) => {
            longrun_core::metrics::submitted(&job);
            run(RunOutcome::Submitted, None)
        }
        Ok(crate::Submitted::Replayed(_)) => run(RunOutcome::Submitted, None),
        Err(problem) if problem.status == 503 => {
            return Err(longrun_core::ports::StoreError::Unavailable(problem.detail));
        }
        Err(problem) => {
            tracing::warn!(status = problem.status, detail = %problem.detail, "the tick's job was refused");
            run(RunOutcome::Refused, Some(problem.detail))
        }
    })
}
