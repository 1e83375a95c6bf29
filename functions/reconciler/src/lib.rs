//! The reconciler function: runs on a schedule and re-enqueues overdue jobs.
//!
//! Every non-terminal job carries `due_at`, the time by which something must
//! have happened to it (queued: enqueue grace after submit or `run_at`;
//! running: its lease expiry, moved by every heartbeat). The reconciler
//! reads the sparse `due` index (every shard) for jobs past it, re-reads
//! each record, and for a queued job that is due, or a running job whose
//! lease has expired, moves `due_at` on (conditionally, so two reconcilers
//! do not both act) and sends its id to its queue again. This recovers a
//! job whose SendMessage failed after the put, a job whose worker died after
//! its message was dropped as a duplicate, and a message lost past retention.
//! Re-sending is always safe: the worker's claim is idempotent.
//!
//! A backlog looks like lost messages (nothing has claimed the job yet).
//! While the messages in a queue explain its overdue queued jobs
//! ([`backlog`]), those are left alone; otherwise the wait before each
//! further resend doubles ([`JobRecord::resend_wait_ms`]) until a worker
//! claims the job, so a truly lost message is still sent again. A job whose
//! owner asked to cancel and that no worker holds ends CANCELLED here.

pub mod backlog;
pub mod limit_waits;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use longrun_aws::AwsClients;
use longrun_core::ports::{JobMessage, JobQueue, JobStore, MessageCounts, QueueError, StoreError};
use longrun_core::{Config, JobRecord};
use longrun_lambda::{BoxError, ScheduledFunction};
use serde::Serialize;
use tracing::Instrument;

/// Jobs looked at in one run, at most.
pub const MAX_JOBS_PER_RUN: usize = 1000;

/// What the reconciler needs; built once per process.
#[derive(Clone)]
pub struct ReconcilerDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// The work queues.
    pub queue: Arc<dyn JobQueue>,
}

impl ReconcilerDeps {
    /// The production wiring over the process's AWS clients.
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        ReconcilerDeps {
            store: clients.job_store(&config),
            queue: clients.job_queue(&config),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl ScheduledFunction for ReconcilerDeps {
    async fn call(&self, now_ms: i64) -> Result<serde_json::Value, BoxError> {
        Ok(serde_json::to_value(handle(self, now_ms).await?)?)
    }
}

/// Why one overdue job could not be reconciled; it stays due and the next
/// pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    /// The store failed.
    Store(#[from] StoreError),
    #[error("re-enqueue failed, due again after the grace period: {0}")]
    /// A send to a queue failed.
    Enqueue(#[from] QueueError),
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Overdue jobs the pass found.
    pub overdue: usize,
    /// Of those, sent to their queue again.
    pub enqueued: usize,
    /// Ended CANCELLED (a cancel request no worker held).
    pub cancelled: usize,
    /// Left alone (not overdue when read, or someone acted first).
    pub skipped: usize,
    /// Queued jobs left alone because their queue's messages explain the wait.
    pub behind_backlog: usize,
    /// Queued jobs left alone: they wait for room under their limit.
    pub waiting_for_limit: usize,
    /// Jobs whose start came within the look-ahead: sent, delayed to it.
    pub woken: usize,
    /// Could not be handled this pass (a store or queue fault).
    pub failed: usize,
}

/// One reconciliation pass at `now_ms`. Only reading the index can fail
/// the pass; a store error on one job counts as `failed` and the pass goes on.
pub async fn handle(deps: &ReconcilerDeps, now_ms: i64) -> Result<ReconcileReport, StoreError> {
    let ids = deps.store.overdue(now_ms, MAX_JOBS_PER_RUN).await?;
    let mut report = ReconcileReport {
        overdue: ids.len(),
        ..Default::default()
    };
    // Counted before the jobs are read (see `backlog`).
    let messages = if ids.is_empty() {
        BTreeMap::new()
    } else {
        count_messages(deps).await
    };
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        match deps.store.get(&id).await {
            Ok(Some(job)) => jobs.push(job),
            Ok(None) => report.skipped += 1,
            Err(err) => {
                tracing::error!(job_id = %id, error = %err, "could not read an overdue job; it stays due");
                report.failed += 1;
            }
        }
    }
    let explained = queues_behind_backlog(&messages, &jobs, now_ms);
    let waiting_for_limits = limit_waits::accounted_for(deps, &jobs, now_ms).await;
    let grace = deps.config.enqueue_grace_ms();
    for job in jobs {
        let span = tracing::info_span!("reconcile", job_id = %job.id);
        if waiting_for_limits.contains(&job.id) {
            report.waiting_for_limit += 1;
            continue;
        }
        if backlog::defer(&job, explained.contains(&job.queue), now_ms, grace) {
            report.behind_backlog += 1;
            continue;
        }
        match reconcile(deps, job, now_ms).instrument(span.clone()).await {
            Ok(Action::Enqueued) => report.enqueued += 1,
            Ok(Action::Woken) => report.woken += 1,
            Ok(Action::Cancelled) => report.cancelled += 1,
            Ok(Action::Skipped) => report.skipped += 1,
            Err(err) => {
                span.in_scope(|| tracing::error!(error = %err, "could not reconcile; the job stays due"));
                report.failed += 1;
            }
        }
    }
    if report.overdue > 0 {
        tracing::info!(?report, "reconciled");
    }
    Ok(report)
}

/// Every work queue's messages: one GetQueueAttributes each. A queue that
/// cannot be counted is left out (it explains nothing: its jobs are sent
/// again as before).
async fn count_messages(deps: &ReconcilerDeps) -> BTreeMap<String, MessageCounts> {
    let mut counts = BTreeMap::new();
    for queue in deps.config.queue_urls.keys() {
        match deps.queue.message_counts(queue).await {
            Ok(messages) => {
                counts.insert(queue.clone(), messages);
            }
            Err(err) => tracing::warn!(%queue, error = %err, "could not count the queue's messages"),
        }
    }
    counts
}

/// The queues whose `messages` explain their overdue queued `jobs`.
fn queues_behind_backlog(
    messages: &BTreeMap<String, MessageCounts>,
    jobs: &[JobRecord],
    now_ms: i64,
) -> BTreeSet<String> {
    let mut explained = BTreeSet::new();
    for (queue, overdue) in backlog::waiting_per_queue(jobs, now_ms) {
        let Some(counts) = messages.get(&queue) else {
            continue;
        };
        if backlog::explained(*counts, overdue) {
            tracing::info!(%queue, waiting = counts.waiting, in_flight = counts.in_flight, overdue, "overdue jobs wait behind a backlog; not sent again");
            explained.insert(queue);
        }
    }
    explained
}

enum Action {
    Enqueued,
    Woken,
    Cancelled,
    Skipped,
}

async fn reconcile(deps: &ReconcilerDeps, job: JobRecord, now_ms: i64) -> Result<Action, ReconcileError> {
    let id = &job.id;
    let Some(due_at) = job.due_at.filter(|&d| d < now_ms) else {
        return Ok(Action::Skipped);
    };
    if job.cancel_pending_at(now_ms) {
        // Asked to stop, and no worker holds it to see that: it ends here.
        longrun_core::webhook::announce_end(deps.queue.as_ref(), &job, now_ms).await?;
        deps.store.request_cancel(id, now_ms).await?;
        tracing::info!(status = %job.status, "cancelled a job with a cancel request that no worker holds");
        return Ok(Action::Cancelled);
    }
    let grace = deps.config.enqueue_grace_ms();
    // Queued, its start within the look-ahead: sent now, delayed to its
    // start, and due a grace after it as any job.
    if let Some(delay) = job.wake_delay_seconds(now_ms) {
        let start = job.run_at.unwrap_or(now_ms);
        if !deps.store.defer_due(id, due_at, start + grace, false).await? {
            return Ok(Action::Skipped);
        }
        deps.queue
            .enqueue(&job.queue, &JobMessage::for_job(&job, now_ms), delay)
            .await?;
        tracing::info!(delay_seconds = delay, "sent a job whose start is near, delayed to it");
        return Ok(Action::Woken);
    }
    // Queued and due, or running under an expired lease: a worker would take it.
    let stuck = job.claimable_at(now_ms);
    // Moved on either way, so nothing sits at the head of the index for ever;
    // conditional, so two reconcilers do not both act on one job. A resend
    // waits twice as long as the one before it before the next.
    let next_due = if stuck {
        now_ms + JobRecord::resend_wait_ms(job.resends, grace)
    } else {
        now_ms + grace
    };
    if !deps.store.defer_due(id, due_at, next_due, stuck).await? || !stuck {
        return Ok(Action::Skipped);
    }
    deps.queue
        .enqueue(&job.queue, &JobMessage::for_job(&job, now_ms), 0)
        .await?;
    tracing::warn!(
        status = %job.status,
        overdue_ms = now_ms - due_at,
        resends = job.resends + 1,
        "re-enqueued an overdue job"
    );
    Ok(Action::Enqueued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_core::memory::{MemoryJobQueue, MemoryJobStore};
    use longrun_core::ports::JobLifecycle;
    use longrun_core::ports::JobMessage;
    use longrun_core::record::Lease;
    use longrun_core::time::now_ms;
    use longrun_core::{JobRecord, JobStatus};
    use serde_json::json;

    fn fixture() -> (ReconcilerDeps, Arc<MemoryJobStore>, Arc<MemoryJobQueue>) {
        let store = Arc::new(MemoryJobStore::new());
        let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
        let deps = ReconcilerDeps {
            config: Arc::new(longrun_core::fixtures::config(&[("ENQUEUE_GRACE_SECONDS", "60")])),
            store: store.clone(),
            queue: queue.clone(),
        };
        (deps, store, queue)
    }

    fn job(store: &MemoryJobStore, created: i64) -> JobRecord {
        let mut job = longrun_core::fixtures::queued_job_at("alice", "sleep", json!({"seconds": 1}), created);
        job.queue = "slow".into();
        store.insert(job.clone());
        job
    }

    #[tokio::test]
    async fn re_enqueues_a_queued_job_past_its_grace_once() {
        let (deps, store, queue) = fixture();
        let now = now_ms();
        let lost = job(&store, now - 120_000);
        let fresh = job(&store, now);
        let report = handle(&deps, now).await.unwrap();
        assert_eq!((report.overdue, report.enqueued), (1, 1));
        let sent = queue.sent();
        assert_eq!(
            (sent[0].message.job_id.clone(), sent[0].queue.as_str()),
            (lost.id.clone(), "slow")
        );
        assert_eq!(store.get(&lost.id).await.unwrap().unwrap().due_at, Some(now + 60_000));
        assert_eq!(store.get(&fresh.id).await.unwrap().unwrap().due_at, fresh.due_at);

        let again = handle(&deps, now + 1).await.unwrap();
        assert_eq!(again.enqueued, 0, "not again within the grace period");
        assert_eq!(
            handle(&deps, now + 60_001).await.unwrap().enqueued,
            2,
            "after it: the lost job again, and the fresh one, now overdue too"
        );
        let resent: Vec<_> = queue
            .sent()
            .into_iter()
            .filter(|m| m.message.job_id == lost.id)
            .collect();
        assert_eq!(resent.len(), 2);
    }

    #[tokio::test]
    async fn re_enqueues_a_running_job_only_once_its_lease_expired() {
        let (deps, store, queue) = fixture();
        let now = now_ms();
        let crashed = job(&store, now - 1_000);
        store
            .claim(&crashed.id, &Lease::new(now + 10_000), now - 500)
            .await
            .unwrap();
        assert_eq!(handle(&deps, now).await.unwrap().enqueued, 0, "lease still live");
        assert_eq!(handle(&deps, now + 10_001).await.unwrap().enqueued, 1);
        assert_eq!(queue.sent().len(), 1);
    }

    #[tokio::test]
    async fn a_failed_send_leaves_the_job_due_for_the_next_run() {
        let (deps, store, queue) = fixture();
        let now = now_ms();
        job(&store, now - 120_000);
        queue.fail_next_sends(1);
        let report = handle(&deps, now).await.unwrap();
        assert_eq!((report.enqueued, report.failed), (0, 1));
        assert_eq!(handle(&deps, now + 60_001).await.unwrap().enqueued, 1);
    }

    #[tokio::test]
    async fn a_queued_job_with_a_cancel_request_is_cancelled_not_resent() {
        let (deps, store, queue) = fixture();
        let now = now_ms();
        let mut stopped = job(&store, now - 120_000);
        stopped.cancel_requested = true;
        store.insert(stopped.clone());
        let report = handle(&deps, now).await.unwrap();
        assert_eq!((report.cancelled, report.enqueued), (1, 0));
        assert!(queue.sent().is_empty());
        assert_eq!(
            store.get(&stopped.id).await.unwrap().unwrap().status,
            JobStatus::Cancelled
        );
    }

    #[tokio::test]
    async fn a_backlog_gets_a_bounded_number_of_duplicates_and_a_claim_starts_the_count_again() {
        let (deps, store, queue) = fixture();
        let start = now_ms();
        let grace = 60_000;
        let backlog: Vec<JobRecord> = (0..100).map(|_| job(&store, start)).collect();
        // No worker takes anything for an hour; the reconciler runs every 2 s.
        let hour = 3_600_000;
        let mut t = start;
        while t <= start + hour {
            handle(&deps, t).await.unwrap();
            t += 2_000;
        }
        let sent = queue.sent();
        for job in &backlog {
            let resends = sent.iter().filter(|m| m.message.job_id == job.id).count();
            // Waits of 1, 1, 2, 4, 8, 16, 32 graces after the grace of the
            // first send fit in the hour: 7 resends; one per grace would be 59.
            assert!((1..=7).contains(&resends), "{resends} resends of one job in an hour");
        }
        assert!(sent.len() <= 700, "{} messages for a backlog of 100", sent.len());

        // A worker claims one, and it is lost again: the count starts over,
        // so its next resend comes one grace after its new due time.
        let first = &backlog[0];
        let now = start + hour;
        store.claim(&first.id, &Lease::new(now + 1_000), now).await.unwrap();
        assert_eq!(store.get(&first.id).await.unwrap().unwrap().resends, 0);
        let before = queue.sent().len();
        handle(&deps, now + 1_001).await.unwrap();
        let after: Vec<_> = queue.sent().into_iter().skip(before).collect();
        assert_eq!(after.len(), 1, "the crashed run's job is sent again at once");
        assert_eq!(after[0].message.job_id, first.id);
        assert_eq!(
            store.get(&first.id).await.unwrap().unwrap().due_at,
            Some(now + 1_001 + grace)
        );
    }

    #[tokio::test]
    async fn jobs_whose_messages_still_wait_are_not_sent_again_until_one_is_missing_or_the_bound() {
        let (deps, store, queue) = fixture();
        let start = now_ms();
        let grace = 60_000;
        // Ten submitted jobs, each with its message in the slow queue.
        let backlog: Vec<JobRecord> = (0..10).map(|_| job(&store, start)).collect();
        for job in &backlog {
            queue
                .enqueue("slow", &JobMessage::for_job(job, start), 0)
                .await
                .unwrap();
        }
        let sent_at_submit = queue.sent().len();
        let later = start + 2 * grace;
        let report = handle(&deps, later).await.unwrap();
        assert_eq!((report.behind_backlog, report.enqueued), (10, 0), "{report:?}");
        assert_eq!(queue.sent().len(), sent_at_submit, "nothing sent, nothing written");
        // A worker takes three messages (and those jobs) and one message is lost.
        for job in &backlog[..3] {
            store
                .claim(&job.id, &Lease::new(later + grace * 100), later)
                .await
                .unwrap();
        }
        queue.delete_messages("slow", 4);
        let report = handle(&deps, later + 1).await.unwrap();
        assert_eq!(
            (report.behind_backlog, report.enqueued),
            (0, 7),
            "6 messages for 7 overdue jobs: one is lost, so all are sent again"
        );
        // Past the bound, a wait is not explained by any backlog.
        let (deps, store, queue) = fixture();
        let old = job(&store, start);
        queue
            .enqueue("slow", &JobMessage::for_job(&old, start), 0)
            .await
            .unwrap();
        let bound = start + backlog::BACKLOG_DEFER_GRACES * grace;
        assert_eq!(handle(&deps, bound - 1).await.unwrap().behind_backlog, 1);
        assert_eq!(handle(&deps, bound).await.unwrap().enqueued, 1);
    }

    #[tokio::test]
    async fn a_running_job_with_a_cancel_request_and_a_dead_worker_ends_cancelled_not_resent() {
        let (deps, store, queue) = fixture();
        let now = now_ms();
        let crashed = job(&store, now - 10_000);
        store
            .claim(&crashed.id, &Lease::new(now - 5_000), now - 9_000)
            .await
            .unwrap();
        store.request_cancel(&crashed.id, now - 8_000).await.unwrap();
        assert_eq!(
            store.get(&crashed.id).await.unwrap().unwrap().status,
            JobStatus::Running
        );
        let report = handle(&deps, now).await.unwrap();
        assert_eq!((report.cancelled, report.enqueued), (1, 0));
        assert!(queue.sent().is_empty());
        assert_eq!(
            store.get(&crashed.id).await.unwrap().unwrap().status,
            JobStatus::Cancelled
        );
    }

    #[tokio::test]
    async fn one_failing_job_does_not_stop_the_pass() {
        let (deps, store, queue) = fixture();
        let now = now_ms();
        job(&store, now - 120_000);
        job(&store, now - 120_000);
        queue.fail_next_sends(1);
        let report = handle(&deps, now).await.unwrap();
        assert_eq!((report.failed, report.enqueued), (1, 1));
    }
}

#[cfg(test)]
mod wake_tests;
