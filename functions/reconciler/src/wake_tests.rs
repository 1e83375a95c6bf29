//! Jobs whose start is further away than SQS can delay a message: the
//! reconciler sends each once its start is within the look-ahead, delayed
//! to it, and only once.

use std::sync::Arc;

use longrun_core::memory::{MemoryJobQueue, MemoryJobStore};
use longrun_core::ports::{JobLifecycle, JobQueue};
use longrun_core::time::now_ms;
use longrun_core::JobStatus;
use serde_json::json;

use crate::{handle, ReconcilerDeps};

#[tokio::test]
async fn a_job_far_ahead_is_sent_once_when_its_start_is_near_and_never_early() {
    let store = Arc::new(MemoryJobStore::new());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
    let deps = ReconcilerDeps {
        config: Arc::new(longrun_core::fixtures::config(&[("ENQUEUE_GRACE_SECONDS", "60")])),
        store: store.clone(),
        queue: queue.clone(),
    };
    let now = now_ms();
    let start = now + 2 * 86_400_000;
    let mut job = longrun_core::fixtures::queued_job_at("alice", "sleep", json!({"seconds": 1}), now);
    job.run_at = Some(start);
    assert!(job.schedule_far(now, 900_000));
    store.insert(job.clone());
    // A busy queue (a backlog that explains overdue jobs) does not hold it back.
    for _ in 0..5 {
        queue
            .enqueue("fast", &longrun_core::ports::JobMessage::for_job(&job, now), 0)
            .await
            .unwrap();
    }
    let before = queue.sent().len();
    // A day ahead: not due yet.
    assert_eq!(handle(&deps, start - 86_400_000).await.unwrap().overdue, 0);
    // 14 minutes 59.5 s ahead: sent, delayed to its start (rounded up).
    let report = handle(&deps, start - 899_500).await.unwrap();
    assert_eq!(report.woken, 1, "{report:?}");
    let sent: Vec<_> = queue.sent().into_iter().skip(before).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].message.job_id.clone(), sent[0].delay_seconds),
        (job.id.clone(), 900)
    );
    let stored = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.due_at, stored.resends),
        (JobStatus::Queued, Some(start + 60_000), 0)
    );
    // The next passes before its start send nothing more.
    let report = handle(&deps, start - 1_000).await.unwrap();
    assert_eq!((report.woken, report.enqueued), (0, 0));
    assert_eq!(queue.sent().len(), before + 1);
}

#[test]
fn only_a_queued_job_further_away_than_the_look_ahead_waits_for_the_reconciler() {
    let now = 1_000_000_000;
    let job = |run_at: Option<i64>| {
        let mut job = longrun_core::fixtures::queued_job_at("o", "sleep", json!({}), now);
        job.run_at = run_at;
        job
    };
    // (start, far, wake delay at now)
    let table = [
        (None, false, None),
        (Some(now + 900_000), false, Some(900)),
        (Some(now + 900_001), true, Some(900)),
        (Some(now + 1_500), false, Some(2)),
        (Some(now), false, None),
        (Some(now - 5), false, None),
    ];
    for (i, (run_at, far, delay)) in table.into_iter().enumerate() {
        let mut record = job(run_at);
        assert_eq!(record.schedule_far(now, 900_000), far, "case {i}");
        assert_eq!(record.wake_delay_seconds(now), delay, "case {i}");
    }
    let mut running = job(Some(now + 2_000_000));
    running.status = JobStatus::Running;
    assert!(!running.schedule_far(now, 900_000));
    assert_eq!(running.wake_delay_seconds(now), None);
}
