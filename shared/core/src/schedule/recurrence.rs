//! When a schedule fires: a cron expression read in an IANA time zone, or
//! a fixed rate from an anchor, bounded by a start and an end.
//!
//! Cron times are wall-clock times in the zone, and each wall-clock time
//! that matches fires once. Across a daylight-saving change that means: a
//! time that does not exist that day (02:30 in Europe/Berlin on the last
//! Sunday of March) fires at the same distance after the gap (03:30 CEST),
//! and a time that exists twice (02:30 on the last Sunday of October) fires
//! at its first occurrence only — RFC 5545's rule, and jiff's "compatible"
//! disambiguation.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::cron::Cron;

/// How far ahead the next fire time of a cron expression is looked for:
/// an expression that never fires within it (`0 0 30 2 *`) never fires.
const SEARCH_DAYS: i32 = 366 * 5;

/// What a schedule repeats on.
#[derive(Clone, Debug, PartialEq)]
pub enum Recurrence {
    /// Wall-clock times matching a cron expression, in `zone`.
    Cron {
        /// The parsed expression.
        cron: Cron,
        /// The zone it is read in.
        zone: TimeZone,
    },
    /// Every `every_ms` from `anchor_ms`.
    Rate {
        /// The interval.
        every_ms: i64,
        /// The first fire time; every other is a whole number of intervals from it.
        anchor_ms: i64,
    },
}

/// The time zone named `name` (IANA, e.g. `Europe/Berlin`, or `UTC`).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be an IANA time zone name such as Europe/Berlin or UTC".into());
    }
    TimeZone::get(name).map_err(|_| format!("{name:?} is not an IANA time zone (such as Europe/Berlin or UTC)"))
}

/// A rate such as `15 minutes`, `1 hour` or `2 days` (or `rate(15
/// minutes)`), in milliseconds; refused below `min_seconds`.
pub fn parse_rate(text: &str, min_seconds: u32) -> Result<i64, String> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix("rate(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(trimmed);
    let usage = || format!("{text:?} is not a rate: give a whole number and a unit, e.g. \"15 minutes\"");
    let mut parts = inner.split_whitespace();
    let (Some(count), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage());
    };
    let count: i64 = count.parse().map_err(|_| usage())?;
    let unit_seconds = match unit.to_ascii_lowercase().trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        _ => return Err(usage()),
    };
    if count < 1 || count > 366 * 86_400 / unit_seconds {
        return Err(format!("{text:?}: the interval must be between 1 second and 366 days"));
    }
    let seconds = count * unit_seconds;
    if seconds < i64::from(min_seconds) {
        return Err(format!("{text:?}: the shortest interval is {min_seconds} seconds"));
    }
    Ok(seconds * 1000)
}

impl Recurrence {
    /// The first fire time strictly after `after_ms`, not before `start_ms`
    /// and not after `end_ms` (`None`: there is none).
    pub fn next_after(&self, after_ms: i64, start_ms: Option<i64>, end_ms: Option<i64>) -> Option<i64> {
        // Strictly after `after_ms`, and at or after the start.
        let floor = match start_ms {
            Some(start) if start > after_ms => start - 1,
            _ => after_ms,
        };
        let next = match self {
            Recurrence::Rate { every_ms, anchor_ms } => {
                if floor < *anchor_ms {
                    *anchor_ms
                } else {
                    anchor_ms + ((floor - anchor_ms) / every_ms + 1) * every_ms
                }
            }
            Recurrence::Cron { cron, zone } => next_cron(cron, zone, floor)?,
        };
        end_ms.is_none_or(|end| next <= end).then_some(next)
    }

    /// Up to `count` fire times after `after_ms`, in order.
    pub fn upcoming(&self, after_ms: i64, start_ms: Option<i64>, end_ms: Option<i64>, count: usize) -> Vec<i64> {
        let mut times = Vec::with_capacity(count);
        let mut after = after_ms;
        while times.len() < count {
            let Some(next) = self.next_after(after, start_ms, end_ms) else {
                break;
            };
            times.push(next);
            after = next;
        }
        times
    }
}

/// The earliest instant after `after_ms` at which a wall-clock time of
/// `zone` matching `cron` happens. Each matching wall-clock time maps to one
/// instant (compatible disambiguation); the earliest of a day's is taken,
/// not the first in wall-clock order, since a time in a gap maps past
/// times after it.
fn next_cron(cron: &Cron, zone: &TimeZone, after_ms: i64) -> Option<i64> {
    let after = Timestamp::from_millisecond(after_ms).ok()?;
    // The day before too: a time late on it may map past a gap into today.
    let mut day: Date = after.to_zoned(zone.clone()).date().yesterday().ok()?;
    for _ in 0..SEARCH_DAYS {
        let weekday = day.weekday().to_sunday_zero_offset() as u32;
        if cron.matches_day(day.month() as u32, day.day() as u32, weekday) {
            let earliest = cron
                .hours()
                .flat_map(|h| cron.minutes().map(move |m| (h, m)))
                .filter_map(|(h, m)| {
                    let civil = DateTime::new(day.year(), day.month(), day.day(), h as i8, m as i8, 0, 0).ok()?;
                    let instant = zone.to_zoned(civil).ok()?.timestamp().as_millisecond();
                    (instant > after_ms).then_some(instant)
                })
                .min();
            if earliest.is_some() {
                return earliest;
            }
        }
        day = day.tomorrow().ok()?;
    }
    None
}
