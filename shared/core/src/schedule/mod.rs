//! Recurring schedules: the record (`schedule#<id>` in the jobs table,
//! owned like a job), when it fires ([`recurrence`], [`cron`]), and the
//! pure decisions of a tick ([`Schedule::due_tick`], [`Schedule::after_tick`]).
//!
//! A tick submits one job whose id derives from (schedule, tick time)
//! ([`JobId::for_schedule_tick`]), so a duplicated or retried tick never
//! makes two. The scheduler pass makes a tick's job up to
//! [`TICK_LOOKAHEAD_MS`] before the tick (the job waits QUEUED with its
//! `run_at` and starts on time), at most one tick ahead; with `overlap:
//! skip` it decides at the tick itself, when it can see whether the last
//! job ended. Ticks missed while paused, before creation, or while no pass
//! ran are not made up: the next fire time is always counted from now.

mod changes;
pub mod cron;
pub mod recurrence;
mod request;
#[cfg(test)]
mod tests;

pub use changes::{
    cancel_unstarted_tick_job, cancel_waiting_tick, change_schedule, ChangeError, Changed, CHANGE_TRIES,
};
pub use longrun_types::schedule::{
    Overlap, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleRunView, ScheduleView,
};
pub use request::{apply_patch, check_request, ScheduleFields};

use longrun_types::api::SubmitRequest;
use serde::{Deserialize, Serialize};

use crate::record::JobId;
use crate::time::rfc3339;
use recurrence::{parse_rate, zone, Recurrence};

/// How long before its tick a tick's job is made (the pass runs every
/// minute; two minutes survive one late pass).
pub const TICK_LOOKAHEAD_MS: i64 = 120_000;
/// How many past ticks a schedule keeps.
pub const MAX_RECENT_RUNS: usize = 10;
/// How many fire times a view lists.
pub const NEXT_FIRE_TIMES: usize = 5;

/// What a tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// It submitted its job.
    Submitted,
    /// The last job had not ended (`overlap: skip`).
    Skipped,
    /// Its job was not accepted (quota, a job type no longer deployed, …).
    Refused,
}

impl RunOutcome {
    /// `submitted`, `skipped` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Submitted => "submitted",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Refused => "refused",
        }
    }
}

/// One past tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// The tick's time, epoch ms.
    pub tick_at: i64,
    /// What it did.
    pub outcome: RunOutcome,
    /// The job it submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    /// Why it submitted none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A recurring schedule: one item, written whole under a version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// `sch_` and 32 hex digits.
    pub id: String,
    /// The caller who created it; no one else sees it.
    pub owner: String,
    /// A name for people.
    pub name: Option<String>,
    /// Its cron expression (or `rate`).
    pub cron: Option<String>,
    /// Its rate (or `cron`).
    pub rate: Option<String>,
    /// The IANA zone its cron is read in.
    pub timezone: String,
    /// The job each tick submits.
    pub job: SubmitRequest,
    /// What a tick does while the last job runs.
    pub overlap: Overlap,
    /// No tick before this, epoch ms.
    pub start_at: Option<i64>,
    /// No tick after this, epoch ms.
    pub end_at: Option<i64>,
    /// Paused: no next fire time.
    pub paused: bool,
    /// Creation time; a rate without `start_at` counts from it.
    pub created_at: i64,
    /// The owner's last change.
    pub updated_at: i64,
    /// The next tick, if any (none while paused or past the end).
    pub next_fire_at: Option<i64>,
    /// The job of the latest tick that submitted one.
    pub last_job_id: Option<JobId>,
    /// That tick's time.
    pub last_job_tick_at: Option<i64>,
    /// The latest ticks, newest first, at most [`MAX_RECENT_RUNS`].
    pub recent_runs: Vec<ScheduleRun>,
    /// Write counter: every write is conditional on the one read.
    pub version: u64,
}

/// A fresh schedule id.
pub fn new_schedule_id() -> String {
    format!("sch_{}", uuid::Uuid::new_v4().simple())
}

/// Whether `raw` has the shape of a schedule id.
pub fn is_schedule_id(raw: &str) -> bool {
    raw.len() == 36
        && raw.starts_with("sch_")
        && raw[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Schedule {
    /// When it fires (its cron in its zone, or its rate from its start or
    /// creation). Stored schedules were checked at creation; `Err` only for
    /// a record that no longer parses.
    pub fn recurrence(&self) -> Result<Recurrence, String> {
        match (&self.cron, &self.rate) {
            (Some(expression), _) => Ok(Recurrence::Cron {
                cron: cron::Cron::parse(expression).map_err(|e| e.to_string())?,
                zone: zone(&self.timezone)?,
            }),
            (None, Some(rate)) => Ok(Recurrence::Rate {
                every_ms: parse_rate(rate, 1)?,
                anchor_ms: self.start_at.unwrap_or(self.created_at),
            }),
            (None, None) => Err("neither cron nor rate".into()),
        }
    }

    /// Its first fire time after `after_ms` (none while paused).
    pub fn next_fire_after(&self, after_ms: i64) -> Option<i64> {
        if self.paused {
            return None;
        }
        self.recurrence().ok()?.next_after(after_ms, self.start_at, self.end_at)
    }

    /// Its next [`NEXT_FIRE_TIMES`] fire times from `next_fire_at` on.
    pub fn upcoming(&self) -> Vec<i64> {
        let (Some(first), Ok(recurrence)) = (self.next_fire_at, self.recurrence()) else {
            return Vec::new();
        };
        let mut times = vec![first];
        times.extend(recurrence.upcoming(first, self.start_at, self.end_at, NEXT_FIRE_TIMES - 1));
        times
    }

    /// Whether the latest submitted job's tick is still ahead at `now_ms`:
    /// its job waits for it, and no further tick is made before then.
    fn pending_at(&self, now_ms: i64) -> Option<i64> {
        self.last_job_tick_at.filter(|t| *t > now_ms)
    }

    /// When the scheduler pass should next look at it (the due index):
    /// `lookahead_ms` before its next tick (at the tick with `overlap:
    /// skip`), but not before a tick made ahead has come. `None` while paused
    /// or past its end.
    pub fn due_at(&self, lookahead_ms: i64) -> Option<i64> {
        let next = self.next_fire_at?;
        let ahead = match self.overlap {
            Overlap::Skip => next,
            Overlap::Allow => next - lookahead_ms,
        };
        Some(ahead.max(self.last_job_tick_at.unwrap_or(i64::MIN)))
    }

    /// The tick a pass at `now_ms` should make now, if any: the next one,
    /// once within `lookahead_ms` (`overlap: allow`) or come (`skip`), and
    /// no tick made ahead still waiting.
    pub fn due_tick(&self, now_ms: i64, lookahead_ms: i64) -> Option<i64> {
        let next = self.next_fire_at?;
        if self.paused || self.pending_at(now_ms).is_some() {
            return None;
        }
        let horizon = match self.overlap {
            Overlap::Skip => now_ms,
            Overlap::Allow => now_ms + lookahead_ms,
        };
        (next <= horizon).then_some(next)
    }

    /// The schedule after its tick at `tick_at` did `run`, at `now_ms`: the
    /// run first in the recent ones, and the next fire time counted from
    /// the tick or from now, whichever is later — so ticks a late pass
    /// missed collapse into this one, never backfilled.
    pub fn after_tick(&self, run: ScheduleRun, now_ms: i64) -> Schedule {
        let mut next = self.clone();
        if run.outcome == RunOutcome::Submitted {
            next.last_job_id = run.job_id.clone();
            next.last_job_tick_at = Some(run.tick_at);
        }
        next.next_fire_at = self.next_fire_after(run.tick_at.max(now_ms));
        next.recent_runs.insert(0, run);
        next.recent_runs.truncate(MAX_RECENT_RUNS);
        next
    }

    /// The job of the latest tick made ahead, while it still waits for its
    /// tick at `now_ms`: what pausing or deleting the schedule cancels.
    pub fn job_waiting_for_tick(&self, now_ms: i64) -> Option<&JobId> {
        self.pending_at(now_ms).and(self.last_job_id.as_ref())
    }

    /// The API's view, with the statuses of the recent runs' jobs where
    /// known (`status_of`).
    pub fn view(&self, status_of: impl Fn(&JobId) -> Option<String>) -> ScheduleView {
        ScheduleView {
            id: self.id.clone(),
            name: self.name.clone(),
            cron: self.cron.clone(),
            rate: self.rate.clone(),
            timezone: self.timezone.clone(),
            job: self.job.clone(),
            overlap: self.overlap,
            start_at: self.start_at.map(rfc3339),
            end_at: self.end_at.map(rfc3339),
            paused: self.paused,
            next_fire_times: self.upcoming().into_iter().map(rfc3339).collect(),
            recent_runs: self
                .recent_runs
                .iter()
                .map(|run| ScheduleRunView {
                    tick_at: rfc3339(run.tick_at),
                    outcome: run.outcome.as_str().to_owned(),
                    job_id: run.job_id.as_ref().map(|id| id.to_string()),
                    status: run.job_id.as_ref().and_then(&status_of),
                    detail: run.detail.clone(),
                })
                .collect(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}
