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
#[path = "decide_tests.rs"]
mod tests;
