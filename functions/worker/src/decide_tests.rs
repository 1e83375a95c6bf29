//! The worker's decisions as tables.

use super::*;
use serde_json::json;

fn job(attempts: u32, max_attempts: u32) -> JobRecord {
    let mut job = longrun_core::fixtures::queued_job("alice", "sleep", json!({}));
    job.attempts = attempts;
    job.max_attempts = max_attempts;
    job
}

fn result() -> ResultObject {
    ResultObject {
        name: "out.json".into(),
        key: "results/x/out.json".into(),
        content_type: "application/json".into(),
        bytes: 2,
    }
}

fn code(after: &AfterRun) -> String {
    match after {
        AfterRun::End(Finish::Succeeded { .. }) => "SUCCEEDED".into(),
        AfterRun::End(Finish::Cancelled) => "CANCELLED".into(),
        AfterRun::End(Finish::Failed { error }) => format!("FAILED {}", error.code),
        AfterRun::End(other) => format!("{other:?}"),
        AfterRun::Retry(error) => format!("RETRY {}", error.code),
        AfterRun::Continue => "CONTINUE".into(),
        AfterRun::LeaveToNewHolder => "LEAVE".into(),
        AfterRun::ReturnAfterLease(at) => format!("RETURN AFTER {at}"),
    }
}

#[test]
fn what_follows_a_run_as_a_table() {
    use RunEnd::{CancelRequested, InvocationDeadline, JobDeadline, LeaseLapsing, LeaseLost, Panicked, Returned};
    let retryable = || Returned(Err(JobError::retryable("flaky", "try again")));
    let permanent = || Returned(Err(JobError::permanent("bad", "never")));
    let cancelled = || Returned(Err(JobError::permanent(codes::CANCELLED, "cancelled")));
    let fenced = || Returned(Err(JobError::permanent(codes::LEASE_LOST, "taken")));
    let lapsing = LeaseLapsing { lease_expires_at: 77 };
    // (case, how the run stopped, (attempts, max_attempts), cancel seen, what follows)
    type Row = (&'static str, RunEnd, (u32, u32), bool, &'static str);
    let table: Vec<Row> = vec![
        ("success", Returned(Ok(vec![result()])), (1, 3), false, "SUCCEEDED"),
        (
            "success beats a late cancel",
            Returned(Ok(vec![])),
            (1, 3),
            true,
            "SUCCEEDED",
        ),
        ("retryable, attempts left", retryable(), (1, 3), false, "RETRY flaky"),
        (
            "retryable, attempts used up",
            retryable(),
            (3, 3),
            false,
            "FAILED flaky",
        ),
        ("permanent", permanent(), (1, 3), false, "FAILED bad"),
        (
            "a cancel seen beats a retryable error",
            retryable(),
            (1, 3),
            true,
            "CANCELLED",
        ),
        (
            "a cancel seen beats a permanent error",
            permanent(),
            (1, 3),
            true,
            "CANCELLED",
        ),
        (
            "a cancel seen beats the job's deadline",
            JobDeadline,
            (1, 3),
            true,
            "CANCELLED",
        ),
        ("a cancel seen beats a panic", Panicked, (1, 3), true, "CANCELLED"),
        (
            "the handler stopped for a cancel",
            cancelled(),
            (1, 3),
            false,
            "CANCELLED",
        ),
        ("the handler's write was fenced off", fenced(), (1, 3), false, "LEAVE"),
        ("the heartbeat was fenced off", LeaseLost, (1, 3), false, "LEAVE"),
        (
            "the heartbeat saw a cancel",
            CancelRequested,
            (1, 3),
            false,
            "CANCELLED",
        ),
        ("a lapsing lease", lapsing.clone(), (1, 3), false, "RETURN AFTER 77"),
        (
            "a lapsing lease beats a cancel seen",
            lapsing,
            (1, 3),
            true,
            "RETURN AFTER 77",
        ),
        ("out of invocation time", InvocationDeadline, (1, 3), false, "CONTINUE"),
        (
            "out of invocation time, last attempt",
            InvocationDeadline,
            (3, 3),
            false,
            "CONTINUE",
        ),
        (
            "the job's own deadline first",
            JobDeadline,
            (1, 3),
            false,
            "FAILED job_timeout",
        ),
        (
            "a panic is a crash, retried",
            Panicked,
            (1, 3),
            false,
            "RETRY handler_panicked",
        ),
        (
            "a panic past max_attempts is still retried",
            Panicked,
            (3, 3),
            false,
            "RETRY handler_panicked",
        ),
    ];
    for (case, end, (attempts, max_attempts), cancel_seen, expected) in table {
        let after = after_run(end, &job(attempts, max_attempts), cancel_seen);
        assert_eq!(code(&after), expected, "{case}");
    }
}

#[test]
fn a_deadline_the_context_answered_is_the_deadline_that_came_first() {
    let late = || Err(JobError::retryable(codes::INVOCATION_DEADLINE, "out of time"));
    let flaky = || Err(JobError::retryable("flaky", "try again"));
    let cases = [
        (
            "the invocation's deadline first",
            late(),
            RunEnd::InvocationDeadline,
            RunEnd::InvocationDeadline,
        ),
        (
            "the job's own deadline first",
            late(),
            RunEnd::JobDeadline,
            RunEnd::JobDeadline,
        ),
        (
            "any other error is the handler's",
            flaky(),
            RunEnd::JobDeadline,
            RunEnd::Returned(flaky()),
        ),
        (
            "a success is the handler's",
            Ok(vec![]),
            RunEnd::JobDeadline,
            RunEnd::Returned(Ok(vec![])),
        ),
    ];
    for (case, outcome, at_stop, expected) in cases {
        assert_eq!(RunEnd::returned(outcome, at_stop), expected, "{case}");
    }
}

#[test]
fn success_keeps_the_results_it_wrote() {
    let after = after_run(RunEnd::Returned(Ok(vec![result()])), &job(1, 3), false);
    assert_eq!(
        after,
        AfterRun::End(Finish::Succeeded {
            results: vec![result()],
            next: None,
        })
    );
}

#[test]
fn when_a_claimed_job_must_not_start_as_a_table() {
    let now = 1_000_000;
    let fresh = job(1, 3);
    let mut crashed_often = job(11, 3);
    crashed_often.started_at = Some(now - 1);
    let mut late = job(2, 3);
    late.started_at = Some(now - 10_000);
    late.timeout_seconds = 5;
    let mut late_and_crashed = late.clone();
    late_and_crashed.attempts = 11;
    let mut at_the_limit = job(10, 3);
    at_the_limit.started_at = Some(now - 1);
    let cases = [
        ("a fresh job starts", &fresh, None),
        ("started max_claims times: one more start", &at_the_limit, None),
        (
            "started more than max_claims times",
            &crashed_often,
            Some(codes::TOO_MANY_CRASHES),
        ),
        ("past its own deadline", &late, Some(codes::JOB_TIMEOUT)),
        (
            "too many crashes is said first",
            &late_and_crashed,
            Some(codes::TOO_MANY_CRASHES),
        ),
    ];
    for (case, job, expected) in cases {
        let refusal = refusal_at_start(job, now, 10);
        assert_eq!(refusal.as_ref().map(|e| e.code.as_str()), expected, "{case}");
        assert!(refusal.is_none_or(|e| !e.retryable), "{case}: refusals are permanent");
    }
}

#[test]
fn continuations_without_a_checkpoint_are_counted_and_capped() {
    let stalled = |runs: u32| {
        let mut job = job(1, 3);
        job.stalled_runs = runs;
        job
    };
    let cases = [
        ("a run that saved a checkpoint starts the count again", 2, true, Ok(0)),
        ("the first run without one", 0, false, Ok(1)),
        ("the second in a row", 1, false, Ok(2)),
        ("the third in a row ends it", 2, false, Err(codes::NO_PROGRESS)),
        ("past the cap, still ended", 7, false, Err(codes::NO_PROGRESS)),
    ];
    for (case, runs, saved, expected) in cases {
        let got = stalled_runs_after(&stalled(runs), saved, 3);
        assert_eq!(
            got.as_ref().map_err(|e| e.code.as_str()),
            expected.as_ref().map_err(|c| *c),
            "{case}"
        );
        assert!(got.is_ok() || !got.unwrap_err().retryable, "{case}: permanent");
    }
}

#[test]
fn a_normal_job_out_of_fast_worker_time_is_promoted_to_the_slow_queue_as_a_table() {
    let on = longrun_core::fixtures::config(&[]);
    let off = longrun_core::fixtures::config(&[("PROMOTE_TO_SLOW_QUEUE", "false")]);
    let no_slow = longrun_core::fixtures::config(&[
        ("QUEUE_URLS", "fast=http://q/fast"),
        ("JOB_QUEUES", ""),
        ("PRIORITY_QUEUES", ""),
    ]);
    let at = |queue: &str, priority: Priority, stalled: u32| {
        let mut job = job(1, 3);
        (job.queue, job.priority, job.stalled_runs) = (queue.into(), priority, stalled);
        job
    };
    // (case, config, queue, priority, stalled before, checkpoint saved, what follows)
    type Row<'a> = (
        &'a str,
        &'a Config,
        &'a str,
        Priority,
        u32,
        bool,
        Result<(Option<&'a str>, u32), &'a str>,
    );
    let table: Vec<Row> = vec![
        (
            "fast, normal: promoted",
            &on,
            "fast",
            Priority::Normal,
            0,
            true,
            Ok((Some("slow"), 0)),
        ),
        (
            "promoted without a checkpoint: not a stall",
            &on,
            "fast",
            Priority::Normal,
            2,
            false,
            Ok((Some("slow"), 0)),
        ),
        (
            "switched off: stays, counted",
            &off,
            "fast",
            Priority::Normal,
            1,
            false,
            Ok((None, 2)),
        ),
        (
            "switched off, at the cap",
            &off,
            "fast",
            Priority::Normal,
            2,
            false,
            Err(codes::NO_PROGRESS),
        ),
        (
            "no slow queue: stays",
            &no_slow,
            "fast",
            Priority::Normal,
            0,
            false,
            Ok((None, 1)),
        ),
        (
            "already slow: stays",
            &on,
            "slow",
            Priority::Normal,
            0,
            true,
            Ok((None, 0)),
        ),
        (
            "slow, stalled at the cap",
            &on,
            "slow",
            Priority::Normal,
            2,
            false,
            Err(codes::NO_PROGRESS),
        ),
        (
            "urgent: its own queue",
            &on,
            "urgent",
            Priority::High,
            0,
            true,
            Ok((None, 0)),
        ),
        (
            "bulk: its own queue",
            &on,
            "bulk",
            Priority::Low,
            0,
            true,
            Ok((None, 0)),
        ),
        (
            "high priority routed to fast: stays",
            &on,
            "fast",
            Priority::High,
            0,
            true,
            Ok((None, 0)),
        ),
    ];
    for (case, config, queue, priority, stalled, saved, expected) in table {
        let job = at(queue, priority, stalled);
        let got = continuation(&job, saved, 3, promotion(&job, config));
        let got = got.map(|c| (c.queue, c.stalled_runs));
        let expected = expected.map(|(q, n)| (q.map(str::to_owned), n));
        assert_eq!(
            got.as_ref().map_err(|e| e.code.as_str()),
            expected.as_ref().map_err(|c| *c),
            "{case}"
        );
    }
}

#[test]
fn backoff_grows_exponentially_with_jitter_and_a_cap() {
    let config = longrun_core::fixtures::config(&[("RETRY_BASE_SECONDS", "2"), ("RETRY_MAX_SECONDS", "20")]);
    for _ in 0..200 {
        assert!((1..=2).contains(&backoff_seconds(&config, 1)));
        assert!((2..=4).contains(&backoff_seconds(&config, 2)));
        assert!((4..=8).contains(&backoff_seconds(&config, 3)));
        assert!((10..=20).contains(&backoff_seconds(&config, 9)));
        assert!((10..=20).contains(&backoff_seconds(&config, 60)));
    }
}
