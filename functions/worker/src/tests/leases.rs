//! Leases under faults, redrives, and a batch's concurrency.

use super::*;
use longrun_core::ports::QuotaSlots;

/// A fixture whose leases are short (4 s, heartbeat every second), as in
/// the end-to-end runtime, to see what a worker does when its lease lapses.
fn short_lease_fixture(store: Arc<dyn JobStore>) -> (WorkerDeps, Arc<MemoryJobQueue>) {
    let config = Arc::new(longrun_core::fixtures::config(&[
        ("PROGRESS_INTERVAL_MS", "0"),
        ("RETRY_BASE_SECONDS", "4"),
        ("RETRY_MAX_SECONDS", "60"),
        ("LEASE_SECONDS", "4"),
        ("HEARTBEAT_SECONDS", "1"),
    ]));
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
    let deps = WorkerDeps {
        registry: Arc::new(longrun_jobs::standard(&config)),
        store,
        queue: queue.clone(),
        objects: Arc::new(MemoryObjectStore::new()),
        config,
    };
    (deps, queue)
}

/// Runs `handle` under a generous guard: a worker that never stops fails
/// the test instead of hanging it (a liveness check, not a timing one).
async fn handle_within(deps: &WorkerDeps, event: SqsEvent, seconds: u64) -> SqsBatchResponse {
    tokio::time::timeout(Duration::from_secs(seconds), handle(deps, event, &context(600)))
        .await
        .expect("the worker must stop the run once its lease lapses")
}

#[tokio::test]
async fn a_run_whose_lease_cannot_be_extended_stops_before_it_lapses_and_comes_back_after() {
    let store = Arc::new(MemoryJobStore::new());
    let (deps, queue) = short_lease_fixture(store.clone());
    let mut job = longrun_core::fixtures::queued_job("alice", "sleep", json!({"seconds": 60}));
    job.max_attempts = 3;
    store.insert(job.clone());
    // The store goes down just after the claim, for good.
    let down = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        down.set_unavailable(true);
    });
    let response = handle_within(&deps, event(vec![job_message(&job, "m1")]), 30).await;
    assert!(failures(&response).is_empty(), "passed on, not redelivered");
    assert!(
        queue.visibility_changes().is_empty(),
        "never extended after a failed lease extension (nor at the claim)"
    );
    let sent = queue.sent();
    assert_eq!(sent.len(), 1, "the job is passed on to come back after its lease");
    assert_eq!(sent[0].message.job_id, job.id);
    assert!((1..=4).contains(&sent[0].delay_seconds), "{:?}", sent[0]);

    // When it comes back the store is up again: it is taken over and finishes.
    store.set_unavailable(false);
    let record = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Running, "nobody could write the end");
    assert!(record.lease_expires_at.unwrap() > now_ms() - 5_000);
}

#[tokio::test]
async fn a_hanging_heartbeat_call_cannot_keep_a_run_past_its_lease() {
    let memory = Arc::new(MemoryJobStore::new());
    memory.set_heartbeats_hang(true);
    let (deps, queue) = short_lease_fixture(memory.clone());
    let job = longrun_core::fixtures::queued_job("alice", "sleep", json!({"seconds": 60}));
    memory.insert(job.clone());
    let response = handle_within(&deps, event(vec![job_message(&job, "m1")]), 30).await;
    assert!(failures(&response).is_empty());
    assert_eq!(queue.sent().len(), 1, "passed on to come back after the lease");
    let record = memory.get(&job.id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Running, "its lease simply lapses");
    assert!(record.lease_expires_at.unwrap() <= now_ms() + 1_000, "never extended");
}

#[tokio::test]
async fn a_cancel_request_wins_over_a_takeover() {
    let f = fixture();
    let mut crashed = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    crashed.status = JobStatus::Running;
    crashed.attempts = 1;
    crashed.lease_token = Some("dead".into());
    crashed.lease_expires_at = Some(now_ms() - 1);
    crashed.cancel_requested = true;
    f.store.insert(crashed.clone());
    let response = handle(&f.deps, event(vec![job_message(&crashed, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let ended = reload(&f, &crashed).await;
    assert_eq!(
        (ended.status, ended.attempts, ended.takeovers),
        (JobStatus::Cancelled, 1, 0),
        "cancelled without another run"
    );
    assert!(f.objects.keys().is_empty(), "the handler never ran");
}

#[tokio::test]
async fn a_redriven_job_runs_afresh_even_long_after_its_first_start() {
    let f = fixture();
    let mut dead = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    dead.timeout_seconds = 5;
    dead.status = JobStatus::DeadLettered;
    dead.started_at = Some(now_ms() - 3_600_000);
    dead.finished_at = Some(now_ms() - 3_000_000);
    dead.due_at = None;
    f.store.insert(dead.clone());
    let now = now_ms();
    f.store
        .requeue_dead_lettered(&dead.id, now, now + 60_000)
        .await
        .unwrap();
    let redriven = reload(&f, &dead).await;
    let response = handle(&f.deps, event(vec![job_message(&redriven, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let done = reload(&f, &dead).await;
    assert_eq!(
        done.status,
        JobStatus::Succeeded,
        "a redrive starts a fresh run: {:?}",
        done.error
    );
    assert!(done.started_at.unwrap() >= now, "its timeout counts from the new start");
}

#[tokio::test]
async fn store_faults_around_runs_never_redeliver_a_message() {
    // A job that fails retryably every time, run until it ends, with the
    // store down at every other claim: no message is ever reported back
    // (which would count a receive towards the dead-letter queue); the job
    // ends FAILED by its own max_attempts, never dead-lettered.
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "retryable"}), 3);
    let mut next = job_message(&job, "m0");
    for round in 0..12 {
        f.store.set_unavailable(round % 2 == 0);
        let before = f.queue.sent().len();
        let response = handle(&f.deps, event(vec![next.clone()]), &context(60)).await;
        f.store.set_unavailable(false);
        assert!(
            failures(&response).is_empty(),
            "round {round}: a message was redelivered"
        );
        let record = reload(&f, &job).await;
        if record.status.is_terminal() {
            assert_eq!(record.status, JobStatus::Failed);
            assert_eq!(record.error.unwrap().code, "sleep_failed");
            assert_eq!(record.attempts, 3);
            return;
        }
        // Time passes: the backoff is over.
        let mut due = record.clone();
        due.run_at = None;
        f.store.insert(due);
        let sent = f.queue.sent();
        assert_eq!(
            sent.len(),
            before + 1,
            "round {round}: the job went on as a fresh message"
        );
        let body = serde_json::to_string(&sent.last().unwrap().message).unwrap();
        next = message(&format!("m{}", round + 1), &body);
    }
    panic!("the job never ended");
}

#[tokio::test]
async fn an_end_that_cannot_be_written_brings_the_job_back_after_its_lease_not_via_a_receive() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0.4}), 3);
    let store = f.store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        store.set_unavailable(true);
    });
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    f.store.set_unavailable(false);
    assert!(failures(&response).is_empty(), "passed on, not redelivered");
    let record = reload(&f, &job).await;
    assert_eq!(record.status, JobStatus::Running, "the end was never written");
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1);
    let lease_left = (record.lease_expires_at.unwrap() - now_ms()) / 1000;
    assert!(
        (lease_left..=lease_left + 2).contains(&i64::from(sent[0].delay_seconds)),
        "back just after the lease expires: delay {} s, lease {lease_left} s",
        sent[0].delay_seconds
    );
}

/// The most jobs of `ids` seen RUNNING at once while `run` goes on, polling
/// the store every 20 ms.
async fn most_running_at_once(
    f: &Fixture,
    ids: Vec<JobId>,
    run: impl std::future::Future<Output = SqsBatchResponse>,
) -> usize {
    let store = f.store.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let watching = stop.clone();
    let watcher = tokio::spawn(async move {
        let mut most = 0;
        while !watching.load(Ordering::SeqCst) {
            let mut running = 0;
            for id in &ids {
                if store.get(id).await.unwrap().unwrap().status == JobStatus::Running {
                    running += 1;
                }
            }
            most = most.max(running);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        most
    });
    let response = run.await;
    assert!(failures(&response).is_empty());
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap()
}

#[tokio::test]
async fn the_messages_of_a_batch_run_at_once_up_to_the_configured_concurrency() {
    let f = fixture();
    let jobs: Vec<JobRecord> = (0..5).map(|_| add_job(&f, "sleep", json!({"seconds": 1}), 3)).collect();
    let batch = event(
        jobs.iter()
            .enumerate()
            .map(|(i, j)| job_message(j, &format!("m{i}")))
            .collect(),
    );
    let ids = jobs.iter().map(|j| j.id.clone()).collect();
    let most = most_running_at_once(&f, ids, handle(&f.deps, batch, &context(60))).await;
    assert!(most >= 3, "at most {most} of 5 one-second jobs ran at once");
    for job in &jobs {
        assert_eq!(reload(&f, job).await.status, JobStatus::Succeeded);
    }

    // BATCH_CONCURRENCY=1: one after another.
    let mut sequential = fixture();
    let config = longrun_core::fixtures::config(&[("PROGRESS_INTERVAL_MS", "0"), ("BATCH_CONCURRENCY", "1")]);
    sequential.deps.config = Arc::new(config);
    let jobs: Vec<JobRecord> = (0..3)
        .map(|_| add_job(&sequential, "sleep", json!({"seconds": 0.3}), 3))
        .collect();
    let batch = event(
        jobs.iter()
            .enumerate()
            .map(|(i, j)| job_message(j, &format!("s{i}")))
            .collect(),
    );
    let ids = jobs.iter().map(|j| j.id.clone()).collect();
    let most = most_running_at_once(&sequential, ids, handle(&sequential.deps, batch, &context(60))).await;
    assert_eq!(most, 1, "BATCH_CONCURRENCY=1 runs one message at a time");
}

#[tokio::test]
async fn a_batch_reports_exactly_its_own_failures_whatever_order_they_finish_in() {
    let f = fixture();
    let slow = add_job(&f, "sleep", json!({"seconds": 0.5}), 3);
    let quick = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    let batch = event(vec![
        job_message(&slow, "slow"),
        message("poison-1", "{not json"),
        job_message(&quick, "quick"),
        message("poison-2", "[]"),
    ]);
    let response = handle(&f.deps, batch, &context(60)).await;
    assert_eq!(failures(&response), ["poison-1", "poison-2"]);
    assert_eq!(reload(&f, &slow).await.status, JobStatus::Succeeded);
    assert_eq!(reload(&f, &quick).await.status, JobStatus::Succeeded);
}

#[tokio::test]
async fn an_end_whose_answer_was_lost_is_found_applied_and_releases_the_quota_slot() {
    let mut f = fixture();
    let store = Arc::new(MemoryJobStore::new().with_owner_quotas());
    f.deps.store = store.clone();
    f.store = store;
    let job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    f.store.reserve_slot("alice", &job.id, 5).await.unwrap();
    f.store.lose_finish_answers(1);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "acknowledged");
    assert_eq!(reload(&f, &job).await.status, JobStatus::Succeeded);
    assert!(
        f.store.active_slots("alice").await.unwrap().is_empty(),
        "the end sent again was recognised, and what follows it done"
    );
    assert!(f.queue.sent().is_empty(), "nothing passed on: {:?}", f.queue.sent());
}
