//! Five-field cron expressions (`minute hour day-of-month month
//! day-of-week`), parsed once into bit sets and matched against civil
//! (wall-clock) date-times.
//!
//! Each field takes `*` (or `?`), a number, a range `a-b`, a step `*/n`,
//! `a-b/n` or `a/n`, and comma-separated lists of those; months and days of
//! the week also take names (`JAN`, `MON`, case-insensitive), and Sunday is
//! both 0 and 7. As in Vixie cron, when both day-of-month and day-of-week
//! are restricted a day matching either fires. `@hourly`, `@daily`
//! (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`) stand
//! for their usual expressions.

use std::fmt;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Why a cron expression was refused: a sentence for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day-of-month was given as something other than `*`.
    dom_restricted: bool,
    /// Day-of-week was given as something other than `*`.
    dow_restricted: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cron {{ minutes: {:#x}, hours: {:#x}, dom: {:#x}, months: {:#x}, dow: {:#x} }}",
            self.minutes, self.hours, self.days_of_month, self.months, self.days_of_week
        )
    }
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The number the first name stands for (`JAN` is 1, `SUN` is 0).
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

impl Cron {
    /// Parses `expression`.
    pub fn parse(expression: &str) -> Result<Cron, CronError> {
        let expanded = match expression.trim().to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            other if other.starts_with('@') => {
                return Err(CronError(format!("unknown cron macro {:?}", expression.trim())))
            }
            _ => expression.trim().to_owned(),
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "a cron expression has five fields (minute hour day-of-month month day-of-week), \
                 {:?} has {}",
                expression.trim(),
                parts.len()
            )));
        }
        let mut sets = [0u64; 5];
        for ((part, field), set) in parts.iter().zip(FIELDS.iter()).zip(sets.iter_mut()) {
            *set = parse_field(part, field)?;
        }
        // Sunday is 0 and 7.
        let days_of_week = (sets[4] | (sets[4] >> 7)) & 0x7f;
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1],
            days_of_month: sets[2],
            months: sets[3],
            days_of_week,
            dom_restricted: !is_wildcard(parts[2]),
            dow_restricted: !is_wildcard(parts[4]),
        })
    }

    /// Whether the day (`month` 1–12, `day` 1–31, `weekday` 0 = Sunday) fires.
    pub fn matches_day(&self, month: u32, day: u32, weekday: u32) -> bool {
        if !bit(self.months, month) {
            return false;
        }
        let dom = bit(self.days_of_month, day);
        let dow = bit(self.days_of_week, weekday);
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The hours of a firing day, ascending.
    pub fn hours(&self) -> impl Iterator<Item = u32> + '_ {
        (0..24).filter(|h| bit(self.hours, *h))
    }

    /// The minutes of a firing hour, ascending.
    pub fn minutes(&self) -> impl Iterator<Item = u32> + '_ {
        (0..60).filter(|m| bit(self.minutes, *m))
    }
}

fn bit(set: u64, n: u32) -> bool {
    set & (1 << n) != 0
}

fn is_wildcard(part: &str) -> bool {
    part == "*" || part == "?"
}

fn parse_field(part: &str, field: &Field) -> Result<u64, CronError> {
    let mut set = 0u64;
    for item in part.split(',') {
        set |= parse_item(item, field)?;
    }
    Ok(set)
}

fn parse_item(item: &str, field: &Field) -> Result<u64, CronError> {
    let bad = |why: &str| CronError(format!("{} field {item:?}: {why}", field.name));
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => {
            let step: u32 = step.parse().map_err(|_| bad("the step must be a whole number"))?;
            if step == 0 {
                return Err(bad("the step must be at least 1"));
            }
            (range, Some(step))
        }
        None => (item, None),
    };
    let (low, high) = if is_wildcard(range) {
        (field.min, field.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (
            value(a, field).ok_or_else(|| bad("not a value"))?,
            value(b, field).ok_or_else(|| bad("not a value"))?,
        )
    } else {
        let start = value(range, field).ok_or_else(|| bad("not a value"))?;
        // `a/n` runs from a to the field's end.
        (start, if step.is_some() { field.max } else { start })
    };
    for v in [low, high] {
        if v < field.min || v > field.max {
            return Err(bad(&format!("values run from {} to {}", field.min, field.max)));
        }
    }
    if low > high {
        return Err(bad("a range runs from low to high"));
    }
    let mut set = 0u64;
    let mut v = low;
    while v <= high {
        set |= 1 << v;
        v += step.unwrap_or(1);
    }
    Ok(set)
}

fn value(text: &str, field: &Field) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let upper = text.to_ascii_uppercase();
    field
        .names
        .iter()
        .position(|name| *name == upper)
        .map(|i| i as u32 + field.names_from)
}
