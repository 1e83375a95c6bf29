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
//! The queues are counted before the jobs are read: a message leaves its
//! queue only after its job left QUEUED, so a count taken first is never
//! short of the jobs later read as queued (counted after, the jobs that
//! ended meanwhile would have taken their messages with them, and a busy
//! backlog would look like lost messages).
//!
//! Messages in flight count (a message received but not yet claimed), but
//! only while some message still waits: with none waiting, a queued job's
//! message that is in flight belongs to a worker that died with it, and the
//! job is sent again at once. The count can still hide a lost message
//! behind others, so no job is left alone for longer than [`BACKLOG_DEFER_GRACES`] graces after it became ready: past that it
//! is sent again whatever the queue holds.

use std::collections::BTreeMap;

use longrun_core::ports::MessageCounts;
use longrun_core::{JobRecord, JobStatus};

/// How many grace periods after it became ready a queued job may wait,
/// unsent again, for a backlog to reach it.
pub const BACKLOG_DEFER_GRACES: i64 = 20;

/// The overdue jobs that may be waiting behind a backlog, per queue: queued,
/// due to start (a job whose start is still ahead has no message yet: the
/// reconciler sends it), not asked to cancel.
pub fn waiting_per_queue(jobs: &[JobRecord], now_ms: i64) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for job in jobs
        .iter()
        .filter(|j| j.status == JobStatus::Queued && !j.cancel_requested && j.is_due_at(now_ms))
    {
        *counts.entry(job.queue.clone()).or_default() += 1;
    }
    counts
}

/// Whether a queue holding `messages` explains its `overdue` queued jobs.
pub fn explained(messages: MessageCounts, overdue: u64) -> bool {
    overdue > 0 && messages.waiting > 0 && messages.total() >= overdue
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
        && job.is_due_at(now_ms)
        && now_ms - ready_since(job) < BACKLOG_DEFER_GRACES.saturating_mul(grace_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use longrun_core::memory::{MemoryJobQueue, MemoryJobStore};
    use longrun_core::ports::{JobMessage, JobQueue, QueueError};
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
        // (waiting, in flight, overdue queued jobs, explained)
        let table = [
            (0, 0, 0, false),
            (0, 0, 1, false),
            (4, 0, 5, false),
            (5, 0, 5, true),
            (3, 2, 5, true),
            (3, 1, 5, false),
            (9, 0, 5, true),
            (3, 0, 0, false),
            // Nothing waits: the in-flight message is a dead worker's.
            (0, 1, 1, false),
            (0, 5, 5, false),
        ];
        for (waiting, in_flight, overdue, wanted) in table {
            let messages = MessageCounts { waiting, in_flight };
            assert_eq!(
                explained(messages, overdue),
                wanted,
                "{waiting} waiting, {in_flight} in flight, {overdue} overdue"
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
        let counts = waiting_per_queue(&jobs, NOW);
        assert_eq!(counts, BTreeMap::from([("fast".to_owned(), 3), ("slow".to_owned(), 1)]));
    }

    /// Workers that finish `finishing` jobs (their records end, their
    /// messages go) at the moment the queue is counted.
    struct FinishingWorkers {
        queue: Arc<MemoryJobQueue>,
        store: Arc<MemoryJobStore>,
        finishing: Mutex<Vec<JobRecord>>,
    }

    #[longrun_core::async_trait]
    impl JobQueue for FinishingWorkers {
        async fn enqueue(&self, queue: &str, message: &JobMessage, delay: u32) -> Result<(), QueueError> {
            self.queue.enqueue(queue, message, delay).await
        }
        async fn change_visibility(&self, queue: &str, receipt: &str, seconds: u32) -> Result<(), QueueError> {
            self.queue.change_visibility(queue, receipt, seconds).await
        }
        async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
            self.queue.depth(queue).await
        }
        async fn message_counts(&self, queue: &str) -> Result<MessageCounts, QueueError> {
            for mut job in self.finishing.lock().unwrap().drain(..) {
                job.status = JobStatus::Succeeded;
                job.due_at = None;
                self.store.insert(job);
                self.queue.delete_messages(&job_queue(), 1);
            }
            self.queue.message_counts(queue).await
        }
    }

    fn job_queue() -> String {
        "fast".to_owned()
    }

    #[tokio::test]
    async fn jobs_that_end_while_the_reconciler_reads_do_not_make_a_busy_queue_look_lossy() {
        let store = Arc::new(MemoryJobStore::new());
        let memory_queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
        // Queued two minutes ago with the fixtures' grace of one minute.
        let start = NOW - 120_000;
        let jobs: Vec<JobRecord> = (0..10).map(|_| queued(&job_queue(), start)).collect();
        for job in &jobs {
            store.insert(job.clone());
            memory_queue
                .enqueue(&job_queue(), &JobMessage::for_job(job, start), 0)
                .await
                .unwrap();
        }
        let workers = Arc::new(FinishingWorkers {
            queue: memory_queue.clone(),
            store: store.clone(),
            finishing: Mutex::new(jobs[..3].to_vec()),
        });
        let deps = crate::ReconcilerDeps {
            config: Arc::new(longrun_core::fixtures::config(&[("ENQUEUE_GRACE_SECONDS", "60")])),
            store: store.clone(),
            queue: workers,
        };
        let report = crate::handle(&deps, NOW).await.unwrap();
        assert_eq!(
            (report.behind_backlog, report.enqueued),
            (7, 0),
            "seven queued jobs, seven messages: {report:?}"
        );
        assert_eq!(memory_queue.sent().len(), 10, "nothing sent again");
    }
}
