//! Recurring schedules on the wire: `POST /schedules`, `PATCH
//! /schedules/{id}`, and the schedule view with its next fire times and its
//! recent runs.

use serde::{Deserialize, Serialize};

use crate::api::SubmitRequest;

/// What a tick does while the schedule's previous job has not ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Make no job for the tick (recorded as a skipped run).
    #[default]
    Skip,
    /// Make the tick's job anyway: runs may overlap.
    Allow,
}

impl Overlap {
    /// `skip` or `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
        }
    }
}

/// `POST /schedules` body. Exactly one of `cron` and `rate`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// A name for people; at most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Five-field cron (`minute hour day-of-month month day-of-week`), read
    /// in `timezone`: `30 2 * * *` is 02:30 there every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed interval such as `15 minutes`, `1 hour`, `2 days`, counted
    /// from `start_at` (or the schedule's creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// The IANA time zone the cron is read in (`Europe/Berlin`); `UTC` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The job each tick submits, checked like a `POST /jobs` body (no
    /// `delay_seconds` or `run_at`: the tick is its start).
    pub job: SubmitRequest,
    /// What a tick does while the previous tick's job still runs; `skip` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// No tick before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// No tick after this time (RFC 3339); after it the schedule has no next fire time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Created paused: no tick until resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// `PATCH /schedules/{id}` body: the fields to change; the rest stay.
/// Setting `cron` clears `rate` and the other way round.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A new cron expression (replaces `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A new rate (replaces `cron`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// A new time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A new job template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<SubmitRequest>,
    /// A new overlap policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// A new start (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// A new end (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// `true` pauses, `false` resumes (from now: ticks missed while paused
    /// are not made up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// One tick of a schedule: the job it made, or why it made none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRunView {
    /// The tick's time (RFC 3339, UTC).
    pub tick_at: String,
    /// `submitted`, `skipped` (overlap) or `refused` (the job was not accepted).
    pub outcome: String,
    /// The tick's job, when it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The job's status now (read when the schedule is read by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why no job was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A schedule as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleView {
    /// Its id (`sch_…`).
    pub id: String,
    /// Its name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its cron expression, if it is a cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Its rate, if it is a rate schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// The IANA time zone its cron is read in.
    pub timezone: String,
    /// The job each tick submits.
    pub job: SubmitRequest,
    /// `skip` or `allow`.
    pub overlap: Overlap,
    /// No tick before this (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// No tick after this (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<String>,
    /// Whether it is paused.
    pub paused: bool,
    /// Its next five fire times (RFC 3339, UTC); empty when paused or past its end.
    pub next_fire_times: Vec<String>,
    /// Its latest ticks, newest first (at most ten).
    pub recent_runs: Vec<ScheduleRunView>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was last changed by its owner (RFC 3339).
    pub updated_at: String,
}

/// What `GET /schedules` answers: a page of the caller's schedules, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleList {
    /// This page's schedules.
    pub schedules: Vec<ScheduleView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
