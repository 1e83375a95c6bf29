//! Telling a backlog from lost messages. A queued job nobody has claimed
//! past its grace either waits behind other messages or lost its own. When
//! the messages waiting in its queue (visible or delayed) are at least as
//! many as the overdue queued jobs of that queue, every one of those jobs
//! can still have its message there: the wait is explained, and
//! the reconciler sends nothing for them (no write either: they stay due and
//! are looked at again next pass). Once the queue holds fewer messages than
//! it has overdue jobs, some message is lost and every overdue job is sent
//! again as before (with its doubling wait between resends).
//!
//! Messages in flight count (a message received but not yet claimed), but
//! only while some message still waits: with none waiting, a queued job's
//! message that is in flight belongs to a worker that died with it, and the
//! job is sent again at once. The count can still hide a lost message
//! behind others, so no job is left alone for longer than [`BACKLOG_DEFER_GRACES`] graces after it became ready: past that it
//! is sent again whatever the queue holds.

use std::collections::BTreeMap;

use longrun_core::{JobRecord, JobStatus};

/// How many grace periods after it became ready a queued job may wait,
/// unsent again, for a backlog to reach it.
pub const BACKLOG_DEFER_GRACES: i64 = 20;

/// The overdue jobs that may be waiting behind a backlog, per queue: queued,
/// never claimed since they became ready, not asked to cancel.
pub fn waiting_per_queue(jobs: &[JobRecord]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for job in jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued && !j.cancel_requested)
    {
        *counts.entry(job.queue.clone()).or_default() += 1;
    }
    counts
}

/// Whether a queue holding `waiting` messages (visible or delayed) and
/// `in_queue` in all (in flight too) explains its `overdue` queued jobs.
pub fn explained(waiting: u64, in_queue: u64, overdue: u64) -> bool {
    overdue > 0 && waiting > 0 && in_queue >= overdue
}

/// When a queued job became ready to run: its `run_at` (a delay, a retry's
/// backoff) or its last change of status.
fn ready_since(job: &JobRecord) -> i64 {
    job.run_at.map_or(job.updated_at, |run_at| run_at.max(job.updated_at))
}

/// Whether the reconciler leaves `job` alone this pass at `now_ms`, its
/// queue's wait being `explained`.
pub fn defer(job: &JobRecord, explained: bool, now_ms: i64, grace_ms: i64) -> bool {
    explained
        && job.status == JobStatus::Queued
        && !job.cancel_requested
        && now_ms - ready_since(job) < BACKLOG_DEFER_GRACES.saturating_mul(grace_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GRACE: i64 = 3_000;
    const NOW: i64 = 1_000_000;

    fn queued(queue: &str, ready: i64) -> JobRecord {
        let mut job = longrun_core::fixtures::queued_job_at("o", "sleep", json!({}), ready);
        job.queue = queue.into();
        job
    }

    #[test]
    fn messages_explain_a_wait_only_when_there_are_as_many_as_overdue_jobs() {
        // (waiting, in the queue in all, overdue queued jobs, explained)
        let table = [
            (0, 0, 0, false),
            (0, 0, 1, false),
            (4, 4, 5, false),
            (5, 5, 5, true),
            (3, 5, 5, true),
            (9, 9, 5, true),
            (3, 3, 0, false),
            // Nothing waits: the in-flight message is a dead worker's.
            (0, 1, 1, false),
            (0, 5, 5, false),
        ];
        for (waiting, in_queue, overdue, wanted) in table {
            assert_eq!(
                explained(waiting, in_queue, overdue),
                wanted,
                "{waiting} waiting, {in_queue} in all, {overdue} overdue"
            );
        }
    }

    #[test]
    fn only_queued_jobs_count_and_wait_and_none_for_longer_than_the_bound() {
        let mut running = queued("fast", NOW - 5_000);
        running.status = JobStatus::Running;
        let mut cancelling = queued("fast", NOW - 5_000);
        cancelling.cancel_requested = true;
        let mut retried = queued("fast", NOW - 60_000);
        retried.run_at = Some(NOW - 1_000);
        let bound = BACKLOG_DEFER_GRACES * GRACE;
        // (job, the queue explains the wait, deferred)
        let table = [
            (queued("fast", NOW - 5_000), true, true),
            (queued("fast", NOW - 5_000), false, false),
            (queued("fast", NOW - bound + 1), true, true),
            (queued("fast", NOW - bound), true, false),
            (retried.clone(), true, true),
            (running.clone(), true, false),
            (cancelling.clone(), true, false),
        ];
        for (i, (job, queue_explains, wanted)) in table.iter().enumerate() {
            assert_eq!(defer(job, *queue_explains, NOW, GRACE), *wanted, "case {i}");
        }
        let jobs = [
            queued("fast", 0),
            queued("slow", 0),
            queued("fast", 0),
            running,
            cancelling,
            retried,
        ];
        let counts = waiting_per_queue(&jobs);
        assert_eq!(counts, BTreeMap::from([("fast".to_owned(), 3), ("slow".to_owned(), 1)]));
    }
}
