//! Checking a schedule request (`POST /schedules`, or a `PATCH` merged onto
//! the stored schedule): every field but the job's own, whose checks are
//! submit's; each refusal a field error.

use longrun_types::api::SubmitRequest;
use longrun_types::FieldError;

use super::cron::Cron;
use super::recurrence::{parse_rate, zone, Recurrence};
use super::{Overlap, Schedule, SchedulePatch, ScheduleRequest};
use crate::time::parse_rfc3339;

/// The longest schedule name.
pub(crate) const MAX_NAME_CHARS: usize = 128;

/// A checked schedule request.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleFields {
    /// Its name.
    pub name: Option<String>,
    /// Its cron expression, or
    pub cron: Option<String>,
    /// its rate.
    pub rate: Option<String>,
    /// Its zone (`UTC` when none was given).
    pub timezone: String,
    /// The job template (its own checks are the caller's).
    pub job: SubmitRequest,
    /// Its overlap policy.
    pub overlap: Overlap,
    /// Its start, epoch ms.
    pub start_at: Option<i64>,
    /// Its end, epoch ms.
    pub end_at: Option<i64>,
    /// Paused.
    pub paused: bool,
}

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks `request` at `now_ms`; rates shorter than `min_rate_seconds` are
/// refused. A schedule that would never fire (`0 0 30 2 *`, an end before
/// its first tick) is refused too.
pub fn check_request(
    request: ScheduleRequest,
    now_ms: i64,
    min_rate_seconds: u32,
) -> Result<ScheduleFields, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(name) = &request.name {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            errors.push(error(
                "name",
                format!("must be 1 to {MAX_NAME_CHARS} printable characters"),
            ));
        }
    }
    let timezone = request.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
    let zone = zone(&timezone).map_err(|m| errors.push(error("timezone", m))).ok();
    let time = |field: &str, text: &Option<String>, errors: &mut Vec<FieldError>| {
        text.as_deref().and_then(|t| {
            let parsed = parse_rfc3339(t);
            if parsed.is_none() {
                errors.push(error(field, "must be an RFC 3339 time, e.g. 2027-01-31T09:30:00Z"));
            }
            parsed
        })
    };
    let start_at = time("start_at", &request.start_at, &mut errors);
    let end_at = time("end_at", &request.end_at, &mut errors);
    if let (Some(start), Some(end)) = (start_at, end_at) {
        if end <= start {
            errors.push(error("end_at", "must be after start_at"));
        }
    }
    if end_at.is_some_and(|end| end <= now_ms) {
        errors.push(error("end_at", "must be in the future"));
    }
    let recurrence = match (&request.cron, &request.rate) {
        (Some(_), Some(_)) | (None, None) => {
            errors.push(error("cron", "give exactly one of cron and rate"));
            None
        }
        (Some(expression), None) => match (Cron::parse(expression), zone) {
            (Ok(cron), Some(zone)) => Some(Recurrence::Cron { cron, zone }),
            (Err(e), _) => {
                errors.push(error("cron", e.to_string()));
                None
            }
            (Ok(_), None) => None,
        },
        (None, Some(rate)) => match parse_rate(rate, min_rate_seconds) {
            Ok(every_ms) => Some(Recurrence::Rate {
                every_ms,
                anchor_ms: start_at.unwrap_or(now_ms),
            }),
            Err(m) => {
                errors.push(error("rate", m));
                None
            }
        },
    };
    if let Some(recurrence) = &recurrence {
        if errors.is_empty() && recurrence.next_after(now_ms, start_at, end_at).is_none() {
            let field = if end_at.is_some() { "end_at" } else { "cron" };
            errors.push(error(field, "the schedule would never fire"));
        }
    }
    if request.job.delay_seconds.is_some() {
        errors.push(error(
            "job.delay_seconds",
            "a scheduled job starts at its tick; give no delay",
        ));
    }
    if request.job.run_at.is_some() {
        errors.push(error(
            "job.run_at",
            "a scheduled job starts at its tick; give no run_at",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ScheduleFields {
        name: request.name,
        cron: request.cron,
        rate: request.rate,
        timezone,
        job: request.job,
        overlap: request.overlap.unwrap_or_default(),
        start_at,
        end_at,
        paused: request.paused.unwrap_or(false),
    })
}

/// The request a `PATCH` makes of `stored`: its fields, with the patch's
/// over them (`cron` replaces `rate` and the other way round).
pub fn apply_patch(stored: &Schedule, patch: SchedulePatch) -> ScheduleRequest {
    let (cron, rate) = match (patch.cron, patch.rate) {
        (None, None) => (stored.cron.clone(), stored.rate.clone()),
        (cron, rate) => (cron, rate),
    };
    let time = |ms: Option<i64>| ms.map(crate::time::rfc3339);
    ScheduleRequest {
        name: patch.name.or_else(|| stored.name.clone()),
        cron,
        rate,
        timezone: Some(patch.timezone.unwrap_or_else(|| stored.timezone.clone())),
        job: patch.job.unwrap_or_else(|| stored.job.clone()),
        overlap: Some(patch.overlap.unwrap_or(stored.overlap)),
        start_at: patch.start_at.or_else(|| time(stored.start_at)),
        end_at: patch.end_at.or_else(|| time(stored.end_at)),
        paused: Some(patch.paused.unwrap_or(stored.paused)),
    }
}
