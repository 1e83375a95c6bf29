//! A year's activity by month, from CSV records: the pure part of the job,
//! over any `Read`, so it is tested as a table without a store.

use std::io::Read;

use longrun_core::record::{codes, JobError};
use serde::{Deserialize, Serialize};

/// The error code of a CSV this job cannot read (permanent).
pub const INVALID_CSV: &str = "invalid_csv";

/// The longest record kept, in bytes of its cells: a longer one fails the
/// job. The reader holds one record at a time; the bound is checked once the
/// `csv` crate has read the record, so it bounds what the job keeps, not the
/// reader's buffer for that one record (a stray quote can make the rest of
/// a file one record: see docs/limits.md).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// One month's activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Month {
    /// Records dated in the month.
    pub count: u64,
    /// The sum of their amounts.
    pub total: f64,
}

/// The year so far: what a run checkpoints and the report is drawn from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// January first.
    pub months: [Month; 12],
    /// Records read (every year), after the header.
    pub records: u64,
    /// Records of other years, skipped.
    pub other_years: u64,
}

/// Which columns to read and which year to keep.
#[derive(Clone, Debug)]
pub struct Columns<'a> {
    /// The date column: `YYYY-MM…` (RFC 3339 dates and times both fit).
    pub date: &'a str,
    /// The amount column: a decimal number.
    pub amount: &'a str,
    /// The year to report.
    pub year: u16,
}

/// Reads `input` (a CSV with a header row) record by record into `activity`,
/// skipping the first `activity.records` records (those a checkpoint
/// already counted). `after_record` is called after every record, skipped
/// ones included, with the activity so far; answering `false` stops the
/// reading early (a cancel or a deadline), leaving `activity` exact up to
/// that record.
pub fn aggregate(
    input: impl Read,
    columns: &Columns<'_>,
    activity: &mut Activity,
    mut after_record: impl FnMut(&Activity) -> bool,
) -> Result<(), JobError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = reader.byte_headers().map_err(read_error)?.clone();
    let index = |name: &str| {
        header
            .iter()
            .position(|cell| cell == name.as_bytes())
            .ok_or_else(|| JobError::permanent(codes::INVALID_INPUT, format!("the CSV has no column {name:?}")))
    };
    let (date_at, amount_at) = (index(columns.date)?, index(columns.amount)?);
    let skip = activity.records;
    let mut record = csv::ByteRecord::new();
    let mut seen = 0u64;
    while reader.read_byte_record(&mut record).map_err(read_error)? {
        seen += 1;
        if seen <= skip {
            if !after_record(activity) {
                return Ok(());
            }
            continue;
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.as_slice().len() > MAX_RECORD_BYTES {
            return Err(JobError::permanent(
                INVALID_CSV,
                format!("line {line}: a record over {MAX_RECORD_BYTES} bytes"),
            ));
        }
        let cell = |at: usize, name: &str| {
            record
                .get(at)
                .and_then(|c| std::str::from_utf8(c).ok())
                .map(str::trim)
                .ok_or_else(|| JobError::permanent(INVALID_CSV, format!("line {line}: no UTF-8 {name} cell")))
        };
        let (year, month) = year_month(cell(date_at, columns.date)?)
            .ok_or_else(|| JobError::permanent(INVALID_CSV, format!("line {line}: the date is not YYYY-MM…")))?;
        activity.records += 1;
        if year != columns.year {
            activity.other_years += 1;
        } else {
            let amount: f64 = cell(amount_at, columns.amount)?
                .parse()
                .ok()
                .filter(|a: &f64| a.is_finite())
                .ok_or_else(|| JobError::permanent(INVALID_CSV, format!("line {line}: the amount is not a number")))?;
            let month = &mut activity.months[usize::from(month - 1)];
            month.count += 1;
            month.total += amount;
        }
        if !after_record(activity) {
            return Ok(());
        }
    }
    Ok(())
}

/// A reading error: the object's bytes failing to arrive is a storage
/// fault another attempt may get past; anything else is the CSV's own.
fn read_error(err: csv::Error) -> JobError {
    if err.is_io_error() {
        JobError::retryable(codes::STORAGE, err.to_string())
    } else {
        JobError::permanent(INVALID_CSV, err.to_string())
    }
}

/// The year and month (1–12) a `YYYY-MM…` text begins with.
fn year_month(date: &str) -> Option<(u16, u8)> {
    let bytes = date.as_bytes();
    if bytes.len() < 7 || bytes[4] != b'-' || !bytes[..4].iter().chain(&bytes[5..7]).all(u8::is_ascii_digit) {
        return None;
    }
    let year = date[..4].parse().ok()?;
    let month = date[5..7].parse().ok().filter(|m| (1..=12).contains(m))?;
    Some((year, month))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: Columns<'static> = Columns {
        date: "date",
        amount: "amount",
        year: 2025,
    };

    fn run(csv: &str, activity: &mut Activity) -> Result<(), JobError> {
        aggregate(csv.as_bytes(), &COLUMNS, activity, |_| true)
    }

    #[test]
    fn records_land_in_their_month_and_other_years_are_counted_apart() {
        let csv = "id,date,amount\n1,2025-01-03,10\n2,2025-01-31T23:59:00Z,2.5\n3,2024-12-31,99\n4,2025-12-01, 1 \n";
        let mut activity = Activity::default();
        run(csv, &mut activity).unwrap();
        assert_eq!(activity.months[0], Month { count: 2, total: 12.5 });
        assert_eq!(activity.months[11], Month { count: 1, total: 1.0 });
        assert_eq!((activity.records, activity.other_years), (4, 1));
        assert_eq!(activity.months.iter().map(|m| m.count).sum::<u64>(), 3);
    }

    #[test]
    fn bad_input_fails_permanently_naming_its_line() {
        for (csv, code, says) in [
            ("day,amount\n2025-01-01,1\n", codes::INVALID_INPUT, "no column \"date\""),
            ("date,amount\n2025-01-01,ten\n", INVALID_CSV, "line 2: the amount"),
            (
                "date,amount\n2025-01-01,1\n01/02/2025,1\n",
                INVALID_CSV,
                "line 3: the date",
            ),
            ("date,amount\n2025-13-01,1\n", INVALID_CSV, "line 2: the date"),
            ("date,amount\n2025-01-01,inf\n", INVALID_CSV, "line 2: the amount"),
            ("date,amount\n2025-01-01\n", INVALID_CSV, "line 2: no UTF-8 amount"),
        ] {
            let err = run(csv, &mut Activity::default()).unwrap_err();
            assert_eq!((err.code.as_str(), err.retryable), (code, false), "{csv:?}: {err}");
            assert!(err.message.contains(says), "{csv:?}: {}", err.message);
        }
    }

    #[test]
    fn a_stop_is_seen_while_skipping_what_a_checkpoint_counted() {
        let csv = "date,amount\n2025-01-01,1\n2025-01-02,1\n2025-01-03,1\n";
        let mut resumed = Activity {
            records: 2,
            ..Activity::default()
        };
        let mut calls = 0;
        aggregate(csv.as_bytes(), &COLUMNS, &mut resumed, |_| {
            calls += 1;
            false
        })
        .unwrap();
        assert_eq!((calls, resumed.records), (1, 2), "stopped at the first skipped record");
    }

    #[test]
    fn bytes_that_stop_arriving_are_a_retryable_storage_fault() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let err = aggregate(Broken, &COLUMNS, &mut Activity::default(), |_| true).unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), (codes::STORAGE, true), "{err}");
    }

    #[test]
    fn a_record_over_the_bound_fails_and_one_at_it_does_not() {
        let at = format!("date,amount,note\n2025-02-01,1,{}\n", "x".repeat(MAX_RECORD_BYTES - 11));
        run(&at, &mut Activity::default()).unwrap();
        let over = format!("date,amount,note\n2025-02-01,1,{}\n", "x".repeat(MAX_RECORD_BYTES - 10));
        let err = run(&over, &mut Activity::default()).unwrap_err();
        assert!(err.message.contains("over"), "{err}");
    }

    #[test]
    fn stopping_anywhere_and_resuming_from_the_activity_gives_the_same_year() {
        let mut csv = String::from("date,amount\n");
        for i in 0..500u32 {
            csv.push_str(&format!("{}-{:02}-01,{}\n", 2024 + i % 2, 1 + i % 12, i));
        }
        let mut whole = Activity::default();
        run(&csv, &mut whole).unwrap();
        for stop_after in [1u64, 7, 250, 499] {
            let mut part = Activity::default();
            aggregate(csv.as_bytes(), &COLUMNS, &mut part, |a| a.records < stop_after).unwrap();
            assert_eq!(part.records, stop_after);
            // The checkpoint goes through JSON, as it does in the record.
            let mut resumed: Activity = serde_json::from_value(serde_json::to_value(&part).unwrap()).unwrap();
            run(&csv, &mut resumed).unwrap();
            assert_eq!(resumed, whole, "stopped after {stop_after}");
        }
    }
}
