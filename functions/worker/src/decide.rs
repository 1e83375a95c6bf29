//! The worker's decisions, as pure functions of the record and of how a run
//! ended: whether a claimed job may start at all, what to do once its
//! handler has stopped, and how long to back off before a retry. No I/O and
//! no clocks of their own, so they are tested as tables.

use longrun_core::record::{codes, Finish, JobError, Priority};
use longrun_core::{Config, JobRecord, ResultObject};
use rand::Rng;

/// Why a claimed job must not start: it ends FAILED with this error at once.
/// In order: started too often, attempts and takeovers together (crashes
/// are bounded by the queue's `maxReceiveCount`, but a job re-sent by the
/// reconciler starts a new count, so `max_claims` caps them for good), or
/// past its own deadline.
pub fn refusal_at_start(job: &JobRecord, now_ms: i64, max_claims: u32) -> Option<JobError> {
    let starts = job.attempts + job.takeovers;
    if starts > max_claims {
        return Some(JobError::permanent(
            codes::TOO_MANY_CRASHES,
            format!("the job was started {} times without finishing", starts - 1),
        ));
    }
    if job.deadline_ms().is_some_and(|deadline| now_ms >= deadline) {
        return Some(job_timeout());
    }
    None
}

/// The end of a claimed job of a type this worker does not run.
pub fn unknown_job_type(job_type: &str) -> JobError {
    JobError::permanent(
        codes::UNKNOWN_JOB_TYPE,
        format!("this worker does not run {job_type:?} jobs"),
    )
}

/// What stopped a run: its handler's own answer, or what stopped it from
/// outside (a deadline, or the heartbeat about the lease).
#[derive(Clone, Debug, PartialEq)]
pub enum RunEnd {
    /// The handler returned.
    Returned(Result<Vec<ResultObject>, JobError>),
    /// The handler panicked.
    Panicked,
    /// The invocation's deadline (Lambda's time left, less the safety
    /// margin) came, and it was the earlier of the run's two time limits.
    InvocationDeadline,
    /// The job's own deadline (its first start plus its `timeout_seconds`)
    /// came, and it was the earlier one.
    JobDeadline,
    /// The heartbeat found a cancel requested.
    CancelRequested,
    /// Another worker holds the lease now (the heartbeat was fenced off, or
    /// failed).
    LeaseLost,
    /// The lease could not be extended in time and lapses at
    /// `lease_expires_at` (epoch ms); the run stopped just before.
    LeaseLapsing {
        /// When the lease lapses.
        lease_expires_at: i64,
    },
}

impl RunEnd {
    /// The end of a run whose handler answered `outcome`. The context
    /// answers a write past the run's stop time with `invocation_deadline`,
    /// whichever limit that time is: that answer is the end `at_stop` (the
    /// end the stop time itself gives), not an error of the job's.
    pub fn returned(outcome: Result<Vec<ResultObject>, JobError>, at_stop: RunEnd) -> RunEnd {
        match outcome {
            Err(error) if error.is(codes::INVOCATION_DEADLINE) => at_stop,
            outcome => RunEnd::Returned(outcome),
        }
    }
}

/// What to do once a run has stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum AfterRun {
    /// Write this end under the lease (SUCCEEDED, FAILED or CANCELLED).
    End(Finish),
    /// Back to QUEUED after a backoff, with this error on the record.
    Retry(JobError),
    /// The invocation ran out of time first: go on from the checkpoint in a
    /// new invocation, without using an attempt.
    Continue,
    /// Another worker holds the lease now: leave the record to it.
    LeaveToNewHolder,
    /// Nobody may write to the record until the lease lapses at this time
    /// (epoch ms): hand the job on to come back just after it.
    ReturnAfterLease(i64),
}

/// Decides what follows a run. `cancel_seen` is whether a cancel request
/// reached the run (heartbeat or progress write). A lapsing lease comes
/// first (nothing may be written under it); then a cancel seen wins over
/// any error; a panic is a crash, retried whatever `max_attempts` says (the
/// queue's `maxReceiveCount` bounds crashes).
pub fn after_run(end: RunEnd, job: &JobRecord, cancel_seen: bool) -> AfterRun {
    match end {
        RunEnd::LeaseLapsing { lease_expires_at } => AfterRun::ReturnAfterLease(lease_expires_at),
        RunEnd::Returned(Ok(results)) => AfterRun::End(Finish::Succeeded { results, next: None }),
        _ if cancel_seen => AfterRun::End(Finish::Cancelled),
        RunEnd::CancelRequested => AfterRun::End(Finish::Cancelled),
        RunEnd::Returned(Err(error)) if error.is(codes::CANCELLED) => AfterRun::End(Finish::Cancelled),
        RunEnd::Returned(Err(error)) if error.is(codes::LEASE_LOST) => AfterRun::LeaveToNewHolder,
        RunEnd::LeaseLost => AfterRun::LeaveToNewHolder,
        RunEnd::JobDeadline => AfterRun::End(Finish::Failed { error: job_timeout() }),
        RunEnd::InvocationDeadline => AfterRun::Continue,
        RunEnd::Panicked => AfterRun::Retry(JobError::retryable(codes::HANDLER_PANICKED, "the job handler panicked")),
        RunEnd::Returned(Err(error)) if error.retryable && job.attempts < job.max_attempts => AfterRun::Retry(error),
        RunEnd::Returned(Err(error)) => AfterRun::End(Finish::Failed { error }),
    }
}

/// The job's [`JobRecord::stalled_runs`] after a run that ran out of
/// invocation time: 0 when it `saved_checkpoint`, one more otherwise. At
/// `max_stalled_runs` the job makes no progress across continuations (every
/// run starts from the same checkpoint and stops at the same deadline), so it
/// ends FAILED `no_progress` instead of looping for its whole timeout.
pub fn stalled_runs_after(job: &JobRecord, saved_checkpoint: bool, max_stalled_runs: u32) -> Result<u32, JobError> {
    if saved_checkpoint {
        return Ok(0);
    }
    let stalled = job.stalled_runs.saturating_add(1);
    if stalled >= max_stalled_runs {
        return Err(JobError::permanent(
            codes::NO_PROGRESS,
            format!(
                "the job ran out of invocation time {stalled} times in a row without saving a checkpoint; \
                 it needs a longer worker timeout or to checkpoint its progress"
            ),
        ));
    }
    Ok(stalled)
}

/// The queue a job is promoted from when it runs out of invocation time,
/// and the queue it goes on in (whose worker has the longer timeout).
pub const PROMOTED_FROM: &str = "fast";
/// See [`PROMOTED_FROM`].
pub const PROMOTED_TO: &str = "slow";

/// Where a job that ran out of invocation time goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueIn {
    /// The queue it moves to; `None`: the one it came from.
    pub queue: Option<String>,
    /// Its new [`JobRecord::stalled_runs`].
    pub stalled_runs: u32,
}

/// The queue a job that ran out of invocation time is promoted to, if any:
/// with `PROMOTE_TO_SLOW_QUEUE` on, a normal-priority job from the fast
/// queue goes on in the slow one (when the stack has it). High and low
/// priority jobs already run on the slow worker's queues.
pub fn promotion(job: &JobRecord, config: &Config) -> Option<&'static str> {
    let promotes = config.promote_to_slow_queue
        && job.queue == PROMOTED_FROM
        && job.priority == Priority::Normal
        && config.queue_urls.contains_key(PROMOTED_TO);
    promotes.then_some(PROMOTED_TO)
}

/// How a job that ran out of invocation time goes on: promoted to
/// `promoted_to` (see [`promotion`]) with its count of runs without a
/// checkpoint started again — the next run has a longer deadline, so the
/// run just ended is no evidence that runs make no progress — or on its
/// own queue, counted by [`stalled_runs_after`] (and failed `no_progress`
/// at the cap).
pub fn continuation(
    job: &JobRecord,
    saved_checkpoint: bool,
    max_stalled_runs: u32,
    promoted_to: Option<&str>,
) -> Result<ContinueIn, JobError> {
    match promoted_to {
        Some(queue) => Ok(ContinueIn {
            queue: Some(queue.to_owned()),
            stalled_runs: 0,
        }),
        None => stalled_runs_after(job, saved_checkpoint, max_stalled_runs).map(|stalled_runs| ContinueIn {
            queue: None,
            stalled_runs,
        }),
    }
}

fn job_timeout() -> JobError {
    JobError::permanent(codes::JOB_TIMEOUT, "the job ran past its timeout_seconds")
}

/// Exponential backoff with equal jitter: between half and all of
/// `base × 2^(attempt−1)`, capped at the maximum.
pub fn backoff_seconds(config: &Config, attempt: u32) -> u32 {
    let exponential = u64::from(config.retry_base_seconds) << attempt.saturating_sub(1).min(20);
    let cap = exponential.min(u64::from(config.retry_max_seconds)).max(1) as u32;
    rand::rng().random_range(cap.div_ceil(2)..=cap)
}

#[cfg(test)]
mod tests {
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
}
