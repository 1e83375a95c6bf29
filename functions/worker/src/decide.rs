//! The worker's decisions, as pure functions of the record and of how a run
//! ended: whether a claimed job may start at all, what to do once its
//! handler has stopped, and how long to back off before a retry. No I/O and
//! no clocks of their own, so they are tested as tables.

use longrun_core::record::{codes, Finish, JobError};
use longrun_core::{Config, JobRecord};
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

/// Which of a run's two time limits is the earlier: the invocation's
/// (less the safety margin) or the job's own `timeout_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstStop {
    /// The invocation's deadline (Lambda's time left).
    Invocation,
    /// The job's own deadline (its first start plus its timeout).
    Job,
}

/// What to do once a run's handler has stopped.
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
}

/// Decides what follows a run. `outcome` is the handler's answer, with a
/// panic as `handler_panicked` and running out of time as
/// `invocation_deadline` (both retryable); `cancel_seen` is whether a cancel
/// request reached the run (heartbeat or progress write). A cancel seen wins
/// over any error; a panic is a crash, retried whatever `max_attempts` says
/// (the queue's `maxReceiveCount` bounds crashes).
pub fn after_run(
    outcome: Result<Vec<longrun_core::ResultObject>, JobError>,
    job: &JobRecord,
    cancel_seen: bool,
    first_stop: FirstStop,
) -> AfterRun {
    match outcome {
        Ok(results) => AfterRun::End(Finish::Succeeded { results, next: None }),
        Err(_) if cancel_seen => AfterRun::End(Finish::Cancelled),
        Err(error) if error.is(codes::CANCELLED) => AfterRun::End(Finish::Cancelled),
        Err(error) if error.is(codes::LEASE_LOST) => AfterRun::LeaveToNewHolder,
        Err(error) if error.is(codes::INVOCATION_DEADLINE) => match first_stop {
            FirstStop::Job => AfterRun::End(Finish::Failed { error: job_timeout() }),
            FirstStop::Invocation => AfterRun::Continue,
        },
        Err(error) if error.is(codes::HANDLER_PANICKED) => AfterRun::Retry(error),
        Err(error) if error.retryable && job.attempts < job.max_attempts => AfterRun::Retry(error),
        Err(error) => AfterRun::End(Finish::Failed { error }),
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
    use longrun_core::ResultObject;
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
        }
    }

    #[test]
    fn what_follows_a_run_as_a_table() {
        use FirstStop::{Invocation, Job};
        let retryable = || Err(JobError::retryable("flaky", "try again"));
        let permanent = || Err(JobError::permanent("bad", "never"));
        let deadline = || Err(JobError::retryable(codes::INVOCATION_DEADLINE, "out of time"));
        let panicked = || Err(JobError::retryable(codes::HANDLER_PANICKED, "panic"));
        let cancelled = || Err(JobError::permanent(codes::CANCELLED, "cancelled"));
        let lease_lost = || Err(JobError::permanent(codes::LEASE_LOST, "taken"));
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            &str,
            Result<Vec<ResultObject>, JobError>,
            (u32, u32),
            bool,
            FirstStop,
            &str,
        )> = vec![
            ("success", Ok(vec![result()]), (1, 3), false, Invocation, "SUCCEEDED"),
            (
                "success beats a late cancel",
                Ok(vec![]),
                (1, 3),
                true,
                Invocation,
                "SUCCEEDED",
            ),
            (
                "retryable, attempts left",
                retryable(),
                (1, 3),
                false,
                Invocation,
                "RETRY flaky",
            ),
            (
                "retryable, attempts used up",
                retryable(),
                (3, 3),
                false,
                Invocation,
                "FAILED flaky",
            ),
            ("permanent", permanent(), (1, 3), false, Invocation, "FAILED bad"),
            (
                "a cancel seen beats a retryable error",
                retryable(),
                (1, 3),
                true,
                Invocation,
                "CANCELLED",
            ),
            (
                "a cancel seen beats a permanent error",
                permanent(),
                (1, 3),
                true,
                Job,
                "CANCELLED",
            ),
            (
                "the handler stopped for a cancel",
                cancelled(),
                (1, 3),
                false,
                Invocation,
                "CANCELLED",
            ),
            ("lease lost", lease_lost(), (1, 3), false, Invocation, "LEAVE"),
            (
                "out of invocation time",
                deadline(),
                (1, 3),
                false,
                Invocation,
                "CONTINUE",
            ),
            (
                "out of invocation time, last attempt",
                deadline(),
                (3, 3),
                false,
                Invocation,
                "CONTINUE",
            ),
            (
                "the job's own deadline first",
                deadline(),
                (1, 3),
                false,
                Job,
                "FAILED job_timeout",
            ),
            (
                "a panic is a crash, retried",
                panicked(),
                (1, 3),
                false,
                Invocation,
                "RETRY handler_panicked",
            ),
            (
                "a panic past max_attempts is still retried",
                panicked(),
                (3, 3),
                false,
                Invocation,
                "RETRY handler_panicked",
            ),
        ];
        for (case, outcome, (attempts, max_attempts), cancel_seen, first_stop, expected) in table {
            let after = after_run(outcome, &job(attempts, max_attempts), cancel_seen, first_stop);
            assert_eq!(code(&after), expected, "{case}");
        }
    }

    #[test]
    fn success_keeps_the_results_it_wrote() {
        let after = after_run(Ok(vec![result()]), &job(1, 3), false, FirstStop::Invocation);
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
