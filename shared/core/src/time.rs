//! Wall-clock helpers. Job records keep times as Unix epoch milliseconds
//! (TTL attributes as epoch seconds); the API renders them as RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// RFC 3339 with millisecond precision, e.g. `2026-11-23T01:02:03.456Z`.
pub fn rfc3339(epoch_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 time (any offset) as epoch milliseconds; `None` when it does
/// not parse.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// How far in the past a requested start (`run_at`) may lie: clock skew
/// between a caller and the service, not a typo's year.
pub const RUN_AT_PAST_TOLERANCE_MS: i64 = 5 * 60_000;

/// Checks a requested start `run_at` against `now_ms` and the longest delay:
/// the time in epoch ms, or why it is refused.
pub fn run_at_within(text: &str, now_ms: i64, max_delay_seconds: u32) -> Result<i64, String> {
    let at = parse_rfc3339(text).ok_or_else(|| "must be an RFC 3339 time, e.g. 2027-01-31T09:30:00Z".to_owned())?;
    if at - now_ms > i64::from(max_delay_seconds) * 1000 {
        return Err(format!("must be at most {max_delay_seconds} seconds from now"));
    }
    if now_ms - at > RUN_AT_PAST_TOLERANCE_MS {
        return Err("must not be more than 5 minutes in the past".to_owned());
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_start_is_held_to_the_longest_delay_and_a_little_past() {
        let now = 1_800_000_000_000;
        let day = 86_400;
        // (text, accepted as)
        let table: [(&str, Result<i64, &str>); 7] = [
            ("2027-01-15T08:00:00Z", Ok(1_800_000_000_000)),
            ("2027-01-15T09:00:00+01:00", Ok(1_800_000_000_000)),
            ("2027-01-15T08:00:00.500Z", Ok(1_800_000_000_500)),
            ("2027-01-16T08:00:01Z", Err("at most")),
            ("2027-01-15T07:54:59Z", Err("past")),
            ("2027-01-15 08:00", Err("RFC 3339")),
            ("tomorrow", Err("RFC 3339")),
        ];
        for (text, wanted) in table {
            match (run_at_within(text, now, day), wanted) {
                (Ok(at), Ok(want)) => assert_eq!(at, want, "{text}"),
                (Err(message), Err(word)) => assert!(message.contains(word), "{text}: {message}"),
                (got, want) => panic!("{text}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn renders_epoch_millis_as_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
