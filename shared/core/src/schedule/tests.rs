use super::cron::Cron;
use super::recurrence::{parse_rate, zone, Recurrence};
use super::*;
use crate::time::{parse_rfc3339, rfc3339};

fn at(text: &str) -> i64 {
    parse_rfc3339(text).unwrap_or_else(|| panic!("{text}"))
}

fn cron_in(expression: &str, tz: &str) -> Recurrence {
    Recurrence::Cron {
        cron: Cron::parse(expression).unwrap(),
        zone: zone(tz).unwrap(),
    }
}

fn fires(recurrence: &Recurrence, after: &str, count: usize) -> Vec<String> {
    recurrence
        .upcoming(at(after), None, None, count)
        .into_iter()
        .map(rfc3339)
        .collect()
}

#[test]
fn cron_expressions_parse_or_say_what_is_wrong() {
    // (expression, Ok(()) or a word of the error)
    let table: [(&str, Result<(), &str>); 16] = [
        ("* * * * *", Ok(())),
        ("*/15 9-17 * * MON-FRI", Ok(())),
        ("0 0 1,15 jan,jul *", Ok(())),
        ("5/20 * * * 7", Ok(())),
        ("0 12 ? * sun", Ok(())),
        ("@daily", Ok(())),
        ("@hourly", Ok(())),
        ("* * * *", Err("five fields")),
        ("* * * * * *", Err("five fields")),
        ("60 * * * *", Err("0 to 59")),
        ("* 24 * * *", Err("0 to 23")),
        ("* * 0 * *", Err("1 to 31")),
        ("* * * 13 *", Err("1 to 12")),
        ("*/0 * * * *", Err("at least 1")),
        ("10-5 * * * *", Err("low to high")),
        ("@fortnightly", Err("unknown cron macro")),
    ];
    for (expression, wanted) in table {
        match (Cron::parse(expression), wanted) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(word)) => assert!(e.to_string().contains(word), "{expression}: {e}"),
            (got, want) => panic!("{expression}: {got:?}, wanted {want:?}"),
        }
    }
}

#[test]
fn cron_fire_times_follow_the_fields() {
    // (expression, zone, after, the next fire times)
    let table: [(&str, &str, &str, &[&str]); 7] = [
        (
            "*/15 * * * *",
            "UTC",
            "2027-01-01T10:07:00Z",
            &["2027-01-01T10:15:00.000Z", "2027-01-01T10:30:00.000Z"],
        ),
        // Strictly after: a fire time equal to `after` is not next.
        (
            "0 * * * *",
            "UTC",
            "2027-01-01T10:00:00Z",
            &["2027-01-01T11:00:00.000Z"],
        ),
        // Friday 2027-01-01 → the next weekday mornings.
        (
            "30 9 * * MON-FRI",
            "UTC",
            "2027-01-01T10:00:00Z",
            &["2027-01-04T09:30:00.000Z", "2027-01-05T09:30:00.000Z"],
        ),
        // Day of month OR day of week when both are restricted (the 13th, or a Friday).
        (
            "0 0 13 * FRI",
            "UTC",
            "2027-01-01T10:00:00Z",
            &[
                "2027-01-08T00:00:00.000Z",
                "2027-01-13T00:00:00.000Z",
                "2027-01-15T00:00:00.000Z",
            ],
        ),
        // Feb 29 only in leap years.
        (
            "0 0 29 2 *",
            "UTC",
            "2027-01-01T00:00:00Z",
            &["2028-02-29T00:00:00.000Z"],
        ),
        // Read in the zone: 09:00 in New York in winter is 14:00Z.
        (
            "0 9 * * *",
            "America/New_York",
            "2027-01-01T00:00:00Z",
            &["2027-01-01T14:00:00.000Z"],
        ),
        (
            "0 0 * * SUN",
            "Asia/Kolkata",
            "2027-01-01T00:00:00Z",
            &["2027-01-02T18:30:00.000Z"],
        ),
    ];
    for (expression, tz, after, wanted) in table {
        let got = fires(&cron_in(expression, tz), after, wanted.len());
        assert_eq!(got, wanted.to_vec(), "{expression} in {tz} after {after}");
    }
}

#[test]
fn a_daily_0230_in_berlin_fires_once_a_day_across_both_daylight_saving_changes() {
    let daily = cron_in("30 2 * * *", "Europe/Berlin");
    // March 28, 2027: 02:00 CET jumps to 03:00 CEST, so 02:30 does not
    // exist; it fires 30 minutes after the gap (03:30 CEST = 01:30Z).
    assert_eq!(
        fires(&daily, "2027-03-26T12:00:00Z", 3),
        [
            "2027-03-27T01:30:00.000Z",
            "2027-03-28T01:30:00.000Z",
            "2027-03-29T00:30:00.000Z"
        ]
    );
    // October 31, 2027: 03:00 CEST falls back to 02:00 CET, so 02:30 exists
    // twice; it fires at the first only (02:30 CEST = 00:30Z), once.
    assert_eq!(
        fires(&daily, "2027-10-29T12:00:00Z", 3),
        [
            "2027-10-30T00:30:00.000Z",
            "2027-10-31T00:30:00.000Z",
            "2027-11-01T01:30:00.000Z"
        ]
    );
}

#[test]
fn a_cron_in_the_skipped_hour_never_loses_a_time_after_the_gap() {
    // On the change day 02:15 and 02:30 map past the gap onto 03:15 and
    // 03:30 CEST: each instant fires once, in order, none lost; a year
    // later (no change that day) all four are their own times.
    let r = cron_in("30 2 * * *", "Europe/Berlin");
    let both = Recurrence::Cron {
        cron: Cron::parse("15,30 2,3 28 3 *").unwrap(),
        zone: zone("Europe/Berlin").unwrap(),
    };
    assert_eq!(
        fires(&both, "2027-03-27T23:00:00Z", 4),
        [
            "2027-03-28T01:15:00.000Z",
            "2027-03-28T01:30:00.000Z",
            "2028-03-28T00:15:00.000Z",
            "2028-03-28T00:30:00.000Z"
        ]
    );
    assert_eq!(fires(&r, "2027-03-28T01:30:00Z", 1), ["2027-03-29T00:30:00.000Z"]);
}

#[test]
fn a_cron_that_never_fires_has_no_next_time() {
    assert!(fires(&cron_in("0 0 30 2 *", "UTC"), "2027-01-01T00:00:00Z", 1).is_empty());
}

#[test]
fn rates_parse_with_their_unit_and_floor() {
    // (text, floor seconds, ms or a word of the error)
    let table: [(&str, u32, Result<i64, &str>); 9] = [
        ("15 minutes", 60, Ok(900_000)),
        ("1 minute", 60, Ok(60_000)),
        ("rate(2 hours)", 60, Ok(7_200_000)),
        ("1 day", 60, Ok(86_400_000)),
        ("5 seconds", 1, Ok(5_000)),
        ("30 seconds", 60, Err("shortest interval is 60")),
        ("0 minutes", 60, Err("between 1 second")),
        ("every hour", 60, Err("not a rate")),
        ("5 fortnights", 60, Err("not a rate")),
    ];
    for (text, floor, wanted) in table {
        match (parse_rate(text, floor), wanted) {
            (Ok(ms), Ok(want)) => assert_eq!(ms, want, "{text}"),
            (Err(m), Err(word)) => assert!(m.contains(word), "{text}: {m}"),
            (got, want) => panic!("{text}: {got:?}, wanted {want:?}"),
        }
    }
}

#[test]
fn a_rate_counts_whole_intervals_from_its_anchor_within_start_and_end() {
    let anchor = at("2027-01-01T00:00:00Z");
    let rate = Recurrence::Rate {
        every_ms: 600_000,
        anchor_ms: anchor,
    };
    // (after, start, end, next)
    let table = [
        (anchor - 1, None, None, Some(anchor)),
        (anchor, None, None, Some(anchor + 600_000)),
        (anchor + 599_999, None, None, Some(anchor + 600_000)),
        (anchor + 600_000, None, None, Some(anchor + 1_200_000)),
        (anchor, Some(anchor + 1_000_000), None, Some(anchor + 1_200_000)),
        (anchor, None, Some(anchor + 599_999), None),
        (anchor, None, Some(anchor + 600_000), Some(anchor + 600_000)),
    ];
    for (after, start, end, next) in table {
        assert_eq!(
            rate.next_after(after, start, end),
            next,
            "after {after} start {start:?} end {end:?}"
        );
    }
}

fn schedule(overlap: Overlap, next_fire_at: i64) -> Schedule {
    Schedule {
        id: new_schedule_id(),
        owner: "alice".into(),
        name: None,
        cron: None,
        rate: Some("1 minute".into()),
        timezone: "UTC".into(),
        job: serde_json::from_value(serde_json::json!({"type": "sleep", "input": {}})).unwrap(),
        overlap,
        start_at: None,
        end_at: None,
        paused: false,
        created_at: next_fire_at - 60_000,
        updated_at: next_fire_at - 60_000,
        next_fire_at: Some(next_fire_at),
        last_job_id: None,
        last_job_tick_at: None,
        recent_runs: Vec::new(),
        version: 1,
    }
}

#[test]
fn a_tick_is_made_ahead_when_overlap_is_allowed_and_at_the_tick_when_it_is_skipped() {
    let tick = 1_800_000_000_000;
    let la = TICK_LOOKAHEAD_MS;
    // (overlap, now, due tick)
    let table = [
        (Overlap::Allow, tick - la - 1, None),
        (Overlap::Allow, tick - la, Some(tick)),
        (Overlap::Allow, tick + 5_000, Some(tick)),
        (Overlap::Skip, tick - 1, None),
        (Overlap::Skip, tick, Some(tick)),
    ];
    for (overlap, now, wanted) in table {
        let s = schedule(overlap, tick);
        assert_eq!(s.due_tick(now, la), wanted, "{overlap:?} at {now}");
    }
    assert_eq!(schedule(Overlap::Allow, tick).due_at(la), Some(tick - la));
    assert_eq!(schedule(Overlap::Skip, tick).due_at(la), Some(tick));
    let mut paused = schedule(Overlap::Skip, tick);
    paused.paused = true;
    assert_eq!(paused.due_tick(tick + 1, la), None);
}

#[test]
fn after_a_tick_the_next_is_counted_from_now_so_missed_ticks_are_not_made_up() {
    let tick = 1_800_000_000_000;
    let s = schedule(Overlap::Allow, tick);
    let run = |tick_at| ScheduleRun {
        tick_at,
        outcome: RunOutcome::Submitted,
        job_id: Some(JobId::for_schedule_tick(&s.id, tick_at)),
        detail: None,
    };
    // Made ahead: the next tick follows this one, and none is made until it came.
    let ahead = s.after_tick(run(tick), tick - 60_000);
    assert_eq!(ahead.next_fire_at, Some(tick + 60_000));
    assert_eq!(
        ahead.due_tick(tick - 1, TICK_LOOKAHEAD_MS),
        None,
        "one tick ahead at most"
    );
    assert_eq!(ahead.due_at(TICK_LOOKAHEAD_MS), Some(tick));
    assert_eq!(ahead.job_waiting_for_tick(tick - 1), ahead.last_job_id.as_ref());
    assert_eq!(ahead.due_tick(tick, TICK_LOOKAHEAD_MS), Some(tick + 60_000));
    // Ten minutes late (no pass ran): one tick now, the next after now.
    let late = s.after_tick(run(tick), tick + 600_500);
    assert_eq!(late.next_fire_at, Some(tick + 660_000));
    assert_eq!(late.recent_runs.len(), 1);
    // Recent runs are capped, newest first.
    let mut many = s.clone();
    for i in 0..(MAX_RECENT_RUNS as i64 + 3) {
        many = many.after_tick(run(tick + i * 60_000), tick + i * 60_000);
    }
    assert_eq!(many.recent_runs.len(), MAX_RECENT_RUNS);
    assert_eq!(
        many.recent_runs[0].tick_at,
        tick + (MAX_RECENT_RUNS as i64 + 2) * 60_000
    );
}

#[test]
fn schedule_requests_are_refused_field_by_field() {
    let now = at("2027-01-01T00:00:00Z");
    let base = serde_json::json!({"cron": "0 * * * *", "job": {"type": "sleep", "input": {}}});
    // (change to the base request, the field refused)
    let table: [(serde_json::Value, Option<&str>); 11] = [
        (serde_json::json!({}), None),
        (serde_json::json!({"timezone": "Europe/Berlin"}), None),
        (serde_json::json!({"timezone": "Mars/Olympus"}), Some("timezone")),
        (serde_json::json!({"cron": "0 25 * * *"}), Some("cron")),
        (serde_json::json!({"rate": "1 hour"}), Some("cron")),
        (serde_json::json!({"cron": null, "rate": "10 seconds"}), Some("rate")),
        (
            serde_json::json!({"start_at": "2027-02-01T00:00:00Z", "end_at": "2027-01-15T00:00:00Z"}),
            Some("end_at"),
        ),
        (serde_json::json!({"end_at": "2026-12-01T00:00:00Z"}), Some("end_at")),
        (serde_json::json!({"cron": "0 0 30 2 *"}), Some("cron")),
        (serde_json::json!({"name": ""}), Some("name")),
        (
            serde_json::json!({"job": {"type": "sleep", "input": {}, "delay_seconds": 5}}),
            Some("job.delay_seconds"),
        ),
    ];
    for (change, refused) in table {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let request: ScheduleRequest = serde_json::from_value(body.clone()).unwrap();
        match (check_request(request, now, 60), refused) {
            (Ok(_), None) => {}
            (Err(errors), Some(field)) => assert!(errors.iter().any(|e| e.field == field), "{body}: {errors:?}"),
            (got, want) => panic!("{body}: {got:?}, wanted a refusal of {want:?}"),
        }
    }
}

#[test]
fn a_patch_keeps_what_it_does_not_name_and_swaps_cron_for_rate() {
    let s = schedule(Overlap::Skip, 1_800_000_000_000);
    let merged = apply_patch(
        &s,
        SchedulePatch {
            cron: Some("0 * * * *".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        (merged.cron.as_deref(), merged.rate.as_deref()),
        (Some("0 * * * *"), None)
    );
    assert_eq!(merged.overlap, Some(Overlap::Skip));
    let paused = apply_patch(
        &s,
        SchedulePatch {
            paused: Some(true),
            ..Default::default()
        },
    );
    assert_eq!((paused.rate.as_deref(), paused.paused), (Some("1 minute"), Some(true)));
    assert!(is_schedule_id(&s.id) && !is_schedule_id("sch_nothex") && !is_schedule_id(&format!("x{}", &s.id[1..])));
}
