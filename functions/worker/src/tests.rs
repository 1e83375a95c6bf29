//! Worker's unit tests, over the in-memory adapters.

use super::*;
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::JobLifecycle;
use serde_json::{json, Value};

const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:longrun-fast";

struct Fixture {
    deps: WorkerDeps,
    store: Arc<MemoryJobStore>,
    queue: Arc<MemoryJobQueue>,
    objects: Arc<MemoryObjectStore>,
}

fn fixture() -> Fixture {
    let config = Arc::new(longrun_core::testing::config(&[
        ("PROGRESS_INTERVAL_MS", "0"),
        ("RETRY_BASE_SECONDS", "4"),
        ("RETRY_MAX_SECONDS", "60"),
    ]));
    let store = Arc::new(MemoryJobStore::new());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
    let objects = Arc::new(MemoryObjectStore::new());
    let deps = WorkerDeps {
        registry: Arc::new(longrun_jobs::standard(&config)),
        store: store.clone(),
        queue: queue.clone(),
        objects: objects.clone(),
        config,
    };
    Fixture {
        deps,
        store,
        queue,
        objects,
    }
}

/// A key under the input prefix of `alice`, the owner of the fixture's jobs.
fn alice_input(name: &str) -> String {
    format!("{}{name}", longrun_core::access::input_prefix("alice"))
}

fn add_job(f: &Fixture, job_type: &str, input: Value, max_attempts: u32) -> JobRecord {
    let mut job = longrun_core::testing::queued_job("alice", job_type, input);
    job.max_attempts = max_attempts;
    f.store.insert(job.clone());
    job
}

fn message(id: &str, body: &str) -> SqsMessage {
    serde_json::from_value(json!({
        "messageId": id,
        "receiptHandle": format!("receipt-{id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1"
    }))
    .unwrap()
}

fn job_message(job: &JobRecord, message_id: &str) -> SqsMessage {
    let body = serde_json::to_string(&JobMessage::for_job(job, now_ms())).unwrap();
    message(message_id, &body)
}

fn event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

fn context(seconds_left: i64) -> lambda_runtime::Context {
    let mut context = lambda_runtime::Context::default();
    context.deadline = (now_ms() + seconds_left * 1000) as u64;
    context
}

/// Changes the stored job `ms` milliseconds from now, as another party would
/// while the worker runs it (a cancel request, a takeover).
fn change_later(f: &Fixture, job: &JobRecord, ms: u64, change: impl FnOnce(&mut JobRecord) + Send + 'static) {
    let store = f.store.clone();
    let id = job.id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let mut current = store.get(&id).await.unwrap().unwrap();
        change(&mut current);
        store.insert(current);
    });
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn reload(f: &Fixture, job: &JobRecord) -> JobRecord {
    f.store.get(&job.id).await.unwrap().unwrap()
}

#[tokio::test]
async fn runs_a_job_to_success_and_writes_its_result() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0.2}), 3);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let done = reload(&f, &job).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.progress, 100);
    assert_eq!(done.lease_owner, None);
    assert_eq!(done.due_at, None, "terminal jobs leave the due index");
    assert_eq!(done.results.len(), 1);
    assert!(f.objects.object(&done.results[0].key).is_some());
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_finished_job_does_not_run_it_again() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    let first = reload(&f, &job).await;
    let response = handle(&f.deps, event(vec![job_message(&job, "m1-dup")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "the duplicate is acknowledged");
    assert_eq!(reload(&f, &job).await, first, "record untouched");
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_running_job_is_dropped() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    let lease = Lease::new(now_ms() + 60_000);
    f.store.claim(&job.id, &lease, now_ms()).await.unwrap();
    let response = handle(&f.deps, event(vec![job_message(&job, "dup")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let still = reload(&f, &job).await;
    assert_eq!((still.status, still.attempts), (JobStatus::Running, 1));
    assert_eq!(still.lease_owner.as_deref(), Some(lease.owner.as_str()));
}

#[tokio::test]
async fn a_retryable_failure_requeues_with_backoff_through_a_fresh_message() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "retryable"}), 3);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(
        failures(&response).is_empty(),
        "acknowledged: a retry must not add up to the message's receive count"
    );
    let queued = reload(&f, &job).await;
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.attempts, 1);
    assert_eq!(queued.error.as_ref().map(|e| e.code.as_str()), Some("sleep_failed"));
    assert!(
        f.queue.visibility_changes().is_empty(),
        "a short run changes no visibility: not at the claim, and no heartbeat came"
    );
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "the retry goes out as a fresh message");
    assert_eq!((sent[0].queue.as_str(), &sent[0].message.job_id), ("fast", &job.id));
    assert!(
        (2..=4).contains(&sent[0].delay_seconds),
        "first backoff is 2..=4 s, got {}",
        sent[0].delay_seconds
    );
    let wait = queued.run_at.unwrap() - now_ms();
    assert!(wait > 1000 && wait <= 4000, "run_at {wait} ms ahead");

    // A duplicate delivered before run_at is passed on, delayed until then, not run.
    let early = handle(&f.deps, event(vec![job_message(&job, "dup")]), &context(60)).await;
    assert!(failures(&early).is_empty());
    assert_eq!(reload(&f, &job).await.attempts, 1);
    let passed = f.queue.sent();
    assert_eq!(passed.len(), 2, "the retry's message, then the duplicate passed on");
    assert!((1..=4).contains(&passed[1].delay_seconds), "{:?}", passed[1]);
}

#[tokio::test]
async fn retryable_failures_end_in_failed_when_attempts_run_out() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "retryable"}), 1);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "a terminal failure deletes the message");
    let failed = reload(&f, &job).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.unwrap().code, "sleep_failed");
}

#[tokio::test]
async fn a_permanent_failure_ends_the_job_at_once() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "permanent"}), 3);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let failed = reload(&f, &job).await;
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
    assert!(failed.finished_at.is_some());
}

#[tokio::test]
async fn poison_messages_are_returned_and_do_not_disturb_the_batch() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    let unknown = JobRecord {
        id: JobId::random(),
        ..job.clone()
    };
    let batch = vec![
        message("garbage", "{not json"),
        message("wrong-shape", r#"{"job": 1}"#),
        job_message(&unknown, "unknown-job"),
        job_message(&job, "good"),
    ];
    let response = handle(&f.deps, event(batch), &context(60)).await;
    assert_eq!(failures(&response), ["garbage", "wrong-shape", "unknown-job"]);
    assert_eq!(reload(&f, &job).await.status, JobStatus::Succeeded);
    let backoffs: Vec<(String, u32)> = f
        .queue
        .visibility_changes()
        .into_iter()
        .filter(|(_, receipt, _)| !receipt.ends_with("good"))
        .map(|(_, receipt, seconds)| (receipt, seconds))
        .collect();
    assert_eq!(
        backoffs.len(),
        3,
        "each poison message is hidden for a backoff: {backoffs:?}"
    );
    assert!(backoffs.iter().all(|(_, s)| (2..=4).contains(s)), "{backoffs:?}");
}

#[tokio::test]
async fn a_panicking_handler_is_a_crash_retried_until_the_dead_letter_queue() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "panic"}), 1);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert_eq!(failures(&response), ["m1"]);
    let queued = reload(&f, &job).await;
    assert_eq!(queued.status, JobStatus::Queued, "max_attempts does not bound crashes");
    assert_eq!(queued.error.unwrap().code, codes::HANDLER_PANICKED);
    assert_eq!(queued.lease_owner, None);
    let (_, _, backoff) = f.queue.visibility_changes().pop().unwrap();
    assert!((2..=4).contains(&backoff), "hidden for a backoff, got {backoff}");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_resumes_from_the_checkpoint() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0.5}), 3);
    let dead = Lease::new(now_ms() - 1);
    let mut crashed = job.clone();
    crashed.status = JobStatus::Running;
    crashed.attempts = 1;
    crashed.lease_owner = Some(dead.owner);
    crashed.lease_expires_at = Some(dead.expires_at);
    crashed.checkpoint = Some(json!({"slept_ms": 400}));
    f.store.insert(crashed);

    let response = handle(&f.deps, event(vec![job_message(&job, "m2")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let done = reload(&f, &job).await;
    assert_eq!(
        (done.status, done.attempts, done.takeovers),
        (JobStatus::Succeeded, 1, 1),
        "a takeover uses no attempt"
    );
    let body: Value = serde_json::from_slice(&f.objects.object(&done.results[0].key).unwrap().0).unwrap();
    assert_eq!(body["resumed_from_ms"], 400);
}

#[tokio::test]
async fn a_job_past_its_own_timeout_fails() {
    let f = fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 30}), 3);
    job.timeout_seconds = 1;
    f.store.insert(job.clone());
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let failed = reload(&f, &job).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.unwrap().code, codes::JOB_TIMEOUT);

    // A retry that starts after the deadline fails without running.
    let mut late = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    late.started_at = Some(now_ms() - 10_000);
    late.timeout_seconds = 5;
    f.store.insert(late.clone());
    handle(&f.deps, event(vec![job_message(&late, "m2")]), &context(60)).await;
    let failed = reload(&f, &late).await;
    assert_eq!((failed.status, failed.results.len()), (JobStatus::Failed, 0));
}

#[tokio::test]
async fn no_job_starts_when_the_invocation_is_about_to_end() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    let response = handle(
        &f.deps,
        event(vec![job_message(&job, "late"), message("junk", "{")]),
        &context(1),
    )
    .await;
    assert_eq!(
        failures(&response),
        ["junk"],
        "the job is passed on as a fresh message; what names no job is returned"
    );
    assert_eq!(reload(&f, &job).await.attempts, 0, "not even claimed");
    let passed = f.queue.sent();
    assert_eq!((passed.len(), passed[0].delay_seconds), (1, 0));
    assert_eq!(passed[0].message.job_id, job.id);
}

#[tokio::test]
async fn a_job_still_running_at_the_deadline_continues_in_a_new_invocation() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 30}), 3);
    // 4 s left, 3 s safety margin: the job gets about 1 s.
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(4)).await;
    assert!(failures(&response).is_empty(), "the old message is done with");
    let queued = reload(&f, &job).await;
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.attempts, 0, "a continuation is not an attempt");
    assert_eq!(queued.error, None);
    assert_eq!(queued.stalled_runs, 0, "it saved checkpoints: progress, not a stall");
    assert!(
        queued.checkpoint.is_some(),
        "progress made is kept for the next invocation"
    );
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "a fresh message, so receive counts do not add up");
    assert_eq!(
        (sent[0].message.job_id.clone(), sent[0].delay_seconds),
        (job.id.clone(), 1)
    );

    // The next invocation goes on from the checkpoint, and continues again.
    let slept = |job: &JobRecord| job.checkpoint.as_ref().unwrap()["slept_ms"].as_u64().unwrap();
    let first = slept(&queued);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = handle(&f.deps, event(vec![job_message(&job, "m2")]), &context(5)).await;
    assert!(failures(&response).is_empty());
    let resumed = reload(&f, &job).await;
    assert!(
        slept(&resumed) > first + 1000,
        "went on from {first} ms to {} ms",
        slept(&resumed)
    );
    assert_eq!((resumed.status, resumed.attempts), (JobStatus::Queued, 0));
    assert_eq!(f.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_cancel_seen_mid_run_wins_over_a_retryable_error() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent_then_fail", json!({"seconds": 1.5}), 3);
    change_later(&f, &job, 200, |running| running.cancel_requested = true);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(reload(&f, &job).await.status, JobStatus::Cancelled);
}

#[tokio::test]
async fn a_queued_job_with_a_cancel_request_is_cancelled_when_its_message_comes() {
    let f = fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    job.cancel_requested = true;
    f.store.insert(job.clone());
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let cancelled = reload(&f, &job).await;
    assert_eq!((cancelled.status, cancelled.attempts), (JobStatus::Cancelled, 0));
}

#[tokio::test]
async fn a_job_restarted_too_often_stops_with_too_many_crashes() {
    let f = fixture();
    let mut crashed = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    crashed.status = JobStatus::Running;
    crashed.attempts = f.deps.config.max_claims;
    crashed.lease_owner = Some("dead".into());
    crashed.lease_expires_at = Some(now_ms() - 1);
    f.store.insert(crashed.clone());
    handle(&f.deps, event(vec![job_message(&crashed, "m1")]), &context(60)).await;
    let failed = reload(&f, &crashed).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.unwrap().code, codes::TOO_MANY_CRASHES);
}

#[tokio::test]
async fn a_cancel_request_seen_mid_run_ends_the_job_cancelled() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 5}), 3);
    change_later(&f, &job, 300, |running| running.cancel_requested = true);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(reload(&f, &job).await.status, JobStatus::Cancelled);
}

/// A job that never reports progress: it only polls its stop signal. As
/// `silent_then_fail` it ignores the signal and fails retryably at the end.
struct SilentJob(&'static str);

#[longrun_core::async_trait]
impl longrun_core::job_types::JobHandler for SilentJob {
    fn job_type(&self) -> &'static str {
        self.0
    }
    fn validate(&self, _: &Value) -> Result<(), Vec<longrun_core::api::FieldError>> {
        Ok(())
    }
    async fn run(&self, ctx: &JobContext, input: &Value) -> Result<Vec<longrun_core::ResultObject>, JobError> {
        let until = tokio::time::Instant::now() + Duration::from_secs_f64(input["seconds"].as_f64().unwrap());
        while tokio::time::Instant::now() < until {
            if self.0 == "silent" {
                ctx.check()?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.0 {
            "silent" => Ok(Vec::new()),
            _ => Err(JobError::retryable("flaky", "failed after ignoring the stop signal")),
        }
    }
}

fn heartbeat_fixture() -> Fixture {
    let mut f = fixture();
    f.deps.config = Arc::new(longrun_core::testing::config(&[
        ("LEASE_SECONDS", "2"),
        ("HEARTBEAT_SECONDS", "1"),
    ]));
    let mut registry = longrun_jobs::standard(&f.deps.config);
    registry.register(Arc::new(SilentJob("silent")));
    registry.register(Arc::new(SilentJob("silent_then_fail")));
    f.deps.registry = Arc::new(registry);
    f
}

#[tokio::test]
async fn heartbeats_keep_a_job_longer_than_its_lease_to_one_worker() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent", json!({"seconds": 3.5}), 3);
    let started = now_ms();
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let done = reload(&f, &job).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 1));
    let hides: Vec<u32> = f.queue.visibility_changes().iter().map(|c| c.2).collect();
    assert!(hides.len() >= 3, "a heartbeat a second: {hides:?}");
    assert!(hides.iter().all(|&s| s == 7), "lease + 5 s each time: {hides:?}");
    assert!(now_ms() - started >= 3500);
}

#[tokio::test]
async fn a_heartbeat_passes_a_cancel_request_to_a_silent_job() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent", json!({"seconds": 30}), 3);
    change_later(&f, &job, 300, |running| running.cancel_requested = true);
    let started = now_ms();
    handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert_eq!(reload(&f, &job).await.status, JobStatus::Cancelled);
    assert!(now_ms() - started < 5_000, "stopped at the next heartbeat");
}

#[tokio::test]
async fn a_job_whose_lease_is_taken_stops_and_leaves_the_record_to_the_new_holder() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent", json!({"seconds": 30}), 3);
    change_later(&f, &job, 300, |stolen| stolen.lease_owner = Some("new-holder".into()));
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "the old holder's message is done with");
    let current = reload(&f, &job).await;
    assert_eq!(current.status, JobStatus::Running);
    assert_eq!(current.lease_owner.as_deref(), Some("new-holder"));
}

/// Caps small enough for a test to break: CSV records of 1 KiB, 10 report
/// groups, 1 MiB of image memory.
fn bomb_fixture() -> Fixture {
    let mut f = fixture();
    f.deps.config = Arc::new(longrun_core::testing::config(&[
        ("PROGRESS_INTERVAL_MS", "0"),
        ("MAX_CSV_RECORD_BYTES", "1024"),
        ("MAX_REPORT_GROUPS", "10"),
        ("MAX_IMAGE_MEMORY_BYTES", "1048576"),
    ]));
    let mut registry = longrun_jobs::standard(&f.deps.config);
    registry.register(Arc::new(LoudJob));
    f.deps.registry = Arc::new(registry);
    f
}

/// A job that fails permanently with a 300 KB message, as a handler quoting
/// a huge input would.
struct LoudJob;

#[longrun_core::async_trait]
impl longrun_core::job_types::JobHandler for LoudJob {
    fn job_type(&self) -> &'static str {
        "loud"
    }
    fn validate(&self, _: &Value) -> Result<(), Vec<longrun_core::api::FieldError>> {
        Ok(())
    }
    async fn run(&self, _: &JobContext, _: &Value) -> Result<Vec<longrun_core::ResultObject>, JobError> {
        Err(JobError::permanent("loud", "é".repeat(150_000)))
    }
}

/// A small, well-behaved report job.
fn normal_report(f: &Fixture) -> JobRecord {
    let csv = "region,amount\neu,1\nus,2\neu,3\n";
    add_job(
        f,
        "report",
        json!({"source": {"csv": csv}, "group_by": ["region"], "values": ["amount"]}),
        3,
    )
}

/// Runs `bomb` then a normal report in ONE batch: the bomb ends FAILED with
/// `code` (its message bounded), the report SUCCEEDS, and neither message is
/// a batch item failure. Returns the bomb's error message.
async fn bomb_then_normal(f: &Fixture, bomb: &JobRecord, code: &str) -> String {
    let normal = normal_report(f);
    let batch = vec![job_message(bomb, "bomb"), job_message(&normal, "normal")];
    let response = handle(&f.deps, event(batch), &context(60)).await;
    assert!(failures(&response).is_empty(), "{:?}", failures(&response));
    let failed = reload(f, bomb).await;
    assert_eq!((failed.status, failed.attempts), (JobStatus::Failed, 1));
    let error = failed.error.expect("a failed job has its error");
    assert_eq!(
        (error.code.as_str(), error.retryable),
        (code, false),
        "{}",
        error.message
    );
    assert!(error.message.len() <= longrun_core::record::MAX_ERROR_MESSAGE_BYTES);
    let done = reload(f, &normal).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.results.len(), 2);
    error.message
}

#[tokio::test]
async fn an_image_too_large_to_decode_fails_and_the_batch_goes_on() {
    let f = bomb_fixture();
    f.objects
        .put(
            &alice_input("bomb.png"),
            longrun_core::bytes::Bytes::from(longrun_core::testing::png_declaring(50_000, 50_000)),
            "image/png",
        )
        .await
        .unwrap();
    let bomb = add_job(
        &f,
        "thumbnail",
        json!({"source": {"key": alice_input("bomb.png")}, "widths": [64]}),
        3,
    );
    let message = bomb_then_normal(&f, &bomb, "image_too_large").await;
    assert!(message.contains("50000×50000"), "{message}");
}

#[tokio::test]
async fn a_csv_record_longer_than_the_cap_fails_and_the_batch_goes_on() {
    let f = bomb_fixture();
    let csv = format!("region,amount\neu,1\n{},2\n", "x".repeat(5_000_000));
    f.objects
        .put(
            &alice_input("long.csv"),
            longrun_core::bytes::Bytes::from(csv),
            "text/csv",
        )
        .await
        .unwrap();
    let bomb = add_job(
        &f,
        "report",
        json!({"source": {"key": alice_input("long.csv")}, "group_by": ["region"], "values": ["amount"]}),
        3,
    );
    let message = bomb_then_normal(&f, &bomb, "csv_record_too_long").await;
    assert!(message.contains("line 3"), "{message}");
}

#[tokio::test]
async fn a_report_with_more_groups_than_the_cap_fails_and_the_batch_goes_on() {
    let f = bomb_fixture();
    let mut csv = String::from("id,amount\n");
    for i in 0..1000 {
        csv.push_str(&format!("g{i},{i}\n"));
    }
    let bomb = add_job(
        &f,
        "report",
        json!({"source": {"csv": csv}, "group_by": ["id"], "values": ["amount"]}),
        3,
    );
    let message = bomb_then_normal(&f, &bomb, "too_many_groups").await;
    assert!(message.contains("line 12"), "failed at the 11th group: {message}");
}

#[tokio::test]
async fn huge_error_messages_are_stored_short_and_the_batch_goes_on() {
    let f = bomb_fixture();
    let loud = add_job(&f, "loud", json!({}), 3);
    let message = bomb_then_normal(&f, &loud, "loud").await;
    assert!(message.ends_with(longrun_core::record::TRUNCATION_MARKER), "{message}");

    // A 200 KB cell that is not a number (within the default record cap).
    let f = fixture();
    let csv = format!("region,amount\neu,1\nus,{}\n", "9x".repeat(100_000));
    f.objects
        .put(
            &alice_input("bad.csv"),
            longrun_core::bytes::Bytes::from(csv),
            "text/csv",
        )
        .await
        .unwrap();
    let bad_cell = add_job(
        &f,
        "report",
        json!({"source": {"key": alice_input("bad.csv")}, "group_by": ["region"], "values": ["amount"]}),
        3,
    );
    let message = bomb_then_normal(&f, &bad_cell, "invalid_number").await;
    assert!(message.contains("line 3"), "{message}");
}

#[tokio::test]
async fn a_job_naming_another_owners_input_fails_exactly_like_a_missing_one() {
    let f = fixture();
    let bobs_key = format!("{}secret.csv", longrun_core::access::input_prefix("bob"));
    f.objects
        .put(
            &bobs_key,
            longrun_core::bytes::Bytes::from_static(b"region,amount\neu,1\n"),
            "text/csv",
        )
        .await
        .unwrap();
    let missing_key = alice_input("missing.csv");
    let report = |key: &str| json!({"source": {"key": key}, "group_by": ["region"], "values": ["amount"]});
    // Records written past submit's check, as a tampered or replayed message would carry them.
    let stealing = add_job(&f, "report", report(&bobs_key), 3);
    let missing = add_job(&f, "report", report(&missing_key), 3);
    let response = handle(
        &f.deps,
        event(vec![job_message(&stealing, "steal"), job_message(&missing, "missing")]),
        &context(60),
    )
    .await;
    assert!(failures(&response).is_empty());
    let stolen = reload(&f, &stealing).await;
    let absent = reload(&f, &missing).await;
    assert_eq!((stolen.status, absent.status), (JobStatus::Failed, JobStatus::Failed));
    let (stolen_error, absent_error) = (stolen.error.unwrap(), absent.error.unwrap());
    assert_eq!(stolen_error.code, codes::INPUT_NOT_FOUND);
    assert_eq!(
        stolen_error.message.replace(&bobs_key, "KEY"),
        absent_error.message.replace(&missing_key, "KEY"),
        "the same answer whether the key is someone else's or does not exist"
    );
    assert!(stolen.results.is_empty());
    assert_eq!(f.objects.keys(), [bobs_key], "nothing written, bob's input untouched");
}

#[tokio::test]
async fn a_job_that_never_checkpoints_stops_after_max_stalled_runs_not_its_timeout() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent", json!({"seconds": 600}), 3);
    let max = f.deps.config.max_stalled_runs;
    for run in 1..=max {
        // 4 s left, 3 s safety margin: each run gets about 1 s, then its deadline.
        let response = handle(&f.deps, event(vec![job_message(&job, &format!("m{run}"))]), &context(4)).await;
        assert!(failures(&response).is_empty());
        let now = reload(&f, &job).await;
        if run < max {
            assert_eq!(
                (now.status, now.stalled_runs),
                (JobStatus::Queued, run),
                "run {run} continues"
            );
            tokio::time::sleep(Duration::from_millis(1100)).await;
        } else {
            assert_eq!(now.status, JobStatus::Failed, "run {run}");
            assert_eq!(now.error.unwrap().code, codes::NO_PROGRESS);
        }
    }
    assert_eq!(
        f.queue.sent().len() as u32,
        max - 1,
        "a continuation per stalled run before the last"
    );
}

/// A fixture whose leases are short (4 s, heartbeat every second), as in
/// the end-to-end runtime, to see what a worker does when its lease lapses.
fn short_lease_fixture(store: Arc<dyn JobStore>) -> (WorkerDeps, Arc<MemoryJobQueue>) {
    let config = Arc::new(longrun_core::testing::config(&[
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
    let mut job = longrun_core::testing::queued_job("alice", "sleep", json!({"seconds": 60}));
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
    let job = longrun_core::testing::queued_job("alice", "sleep", json!({"seconds": 60}));
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
    crashed.lease_owner = Some("dead".into());
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
    let config = longrun_core::testing::config(&[("PROGRESS_INTERVAL_MS", "0"), ("BATCH_CONCURRENCY", "1")]);
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

/// The fixture with the webhook queue as well, where ends are announced.
fn webhook_fixture() -> Fixture {
    let mut f = fixture();
    f.queue = Arc::new(MemoryJobQueue::new(&[
        "fast",
        "slow",
        longrun_core::webhook::WEBHOOK_QUEUE,
    ]));
    f.deps.queue = f.queue.clone();
    f
}

const SALES: &str = "region,amount\neu,1\nus,2\neu,3\nasia,7\n";

/// A report of `SALES` whose chain goes on with a report over the
/// `summary.csv` it writes.
fn report_chain(f: &Fixture) -> JobRecord {
    let mut job = add_job(
        f,
        "report",
        json!({"source": {"csv": SALES}, "group_by": ["region"], "values": ["amount"]}),
        3,
    );
    let step = longrun_core::chain::ChainStep {
        job_type: "report".into(),
        input: json!({"source": {"from_previous": "summary.csv"}, "group_by": ["region"], "values": ["amount_sum"]}),
    };
    job.chain = Some(longrun_core::chain::ChainLink::first(&job.id, vec![step]));
    f.store.insert(job.clone());
    job
}

fn result_key(job: &JobRecord, name: &str) -> String {
    job.results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", job.results))
        .key
        .clone()
}

/// `{region: sum of column}` from a report's summary.json.
fn sums_by_region(f: &Fixture, job: &JobRecord, column: &str) -> std::collections::BTreeMap<String, f64> {
    let (bytes, _) = f.objects.object(&result_key(job, "summary.json")).unwrap();
    let summary: Value = serde_json::from_slice(&bytes).unwrap();
    summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let region = g["key"]["region"].as_str().unwrap().to_owned();
            (region, g["stats"][column]["sum"].as_f64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_chain_step_that_succeeds_creates_its_next_step_and_sends_it() {
    let f = fixture();
    let first = report_chain(&f);
    let response = handle(&f.deps, event(vec![job_message(&first, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let done = reload(&f, &first).await;
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);

    let next_id = JobId::next_in_chain(&first.id);
    assert_eq!(longrun_core::chain::next_job_id(&done), Some(next_id.clone()));
    let next = f.store.get(&next_id).await.unwrap().expect("the next step was created");
    assert_eq!((next.status, next.job_type.as_str()), (JobStatus::Queued, "report"));
    assert_eq!((next.owner.as_str(), next.queue.as_str()), ("alice", "fast"));
    let summary_csv = result_key(&done, "summary.csv");
    assert_eq!(
        next.input["source"],
        json!({"key": summary_csv}),
        "the placeholder resolved"
    );
    assert_eq!(next.input["values"], json!(["amount_sum"]));
    let link = next.chain.as_ref().unwrap();
    assert_eq!((link.step, &link.chain_id), (1, &first.id));
    assert_eq!(link.previous_job_id.as_ref(), Some(&first.id));
    assert_eq!(link.readable_results, [summary_csv]);
    assert!(link.then.is_empty(), "the last step");

    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].queue.as_str(), &sent[0].message.job_id, sent[0].delay_seconds),
        ("fast", &next_id, 0)
    );
}

#[tokio::test]
async fn the_next_step_reads_the_result_its_input_names_and_no_other() {
    let f = fixture();
    let first = report_chain(&f);
    handle(&f.deps, event(vec![job_message(&first, "m1")]), &context(60)).await;
    let first = reload(&f, &first).await;
    let next = f.store.get(&JobId::next_in_chain(&first.id)).await.unwrap().unwrap();
    let response = handle(&f.deps, event(vec![job_message(&next, "m2")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let second = reload(&f, &next).await;
    assert_eq!(second.status, JobStatus::Succeeded, "{:?}", second.error);
    let expected =
        std::collections::BTreeMap::from([("asia".to_owned(), 7.0), ("eu".to_owned(), 4.0), ("us".to_owned(), 2.0)]);
    assert_eq!(sums_by_region(&f, &first, "amount"), expected);
    assert_eq!(
        sums_by_region(&f, &second, "amount_sum"),
        expected,
        "the second report summed the first one's summary.csv"
    );

    // Another result of the same job, and the same result to a job that is
    // no step after it: neither opens.
    let mut other_result = add_job(
        &f,
        "report",
        json!({"source": {"key": result_key(&first, "summary.json")}, "group_by": ["region"], "values": ["amount"]}),
        3,
    );
    other_result.chain = next.chain.clone();
    f.store.insert(other_result.clone());
    let outsider = add_job(
        &f,
        "report",
        json!({"source": {"key": result_key(&first, "summary.csv")}, "group_by": ["region"], "values": ["amount_sum"]}),
        3,
    );
    handle(
        &f.deps,
        event(vec![
            job_message(&other_result, "other"),
            job_message(&outsider, "outsider"),
        ]),
        &context(60),
    )
    .await;
    for job in [&other_result, &outsider] {
        let failed = reload(&f, job).await;
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, codes::INPUT_NOT_FOUND);
        assert!(failed.results.is_empty());
    }
}

#[tokio::test]
async fn a_job_with_a_callback_announces_its_end_to_the_webhook_queue() {
    let f = webhook_fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    job.callback = Some(longrun_core::record::Callback::new("https://hooks.example.com/x"));
    f.store.insert(job.clone());
    let plain = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    let response = handle(
        &f.deps,
        event(vec![job_message(&job, "m1"), job_message(&plain, "m2")]),
        &context(60),
    )
    .await;
    assert!(failures(&response).is_empty());
    assert_eq!(reload(&f, &job).await.status, JobStatus::Succeeded);
    assert_eq!(reload(&f, &plain).await.status, JobStatus::Succeeded);
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "only the job with a callback is announced: {sent:?}");
    assert_eq!(
        (sent[0].queue.as_str(), &sent[0].message.job_id),
        (longrun_core::webhook::WEBHOOK_QUEUE, &job.id)
    );
    assert_eq!(sent[0].delay_seconds, longrun_core::webhook::ANNOUNCE_DELAY_SECONDS);
}

#[tokio::test]
async fn an_end_that_cannot_be_announced_is_not_written() {
    let f = webhook_fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0}), 3);
    job.callback = Some(longrun_core::record::Callback::new("https://hooks.example.com/x"));
    f.store.insert(job.clone());
    f.queue.fail_next_sends(1);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "passed on, not redelivered");
    let record = reload(&f, &job).await;
    assert_eq!(record.status, JobStatus::Running, "no end written unannounced");
    assert!(record.lease_owner.is_some() && record.finished_at.is_none());
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].queue.as_str(), &sent[0].message.job_id),
        ("fast", &job.id),
        "the job comes back once its lease expires, to be ended (and announced) then"
    );
}

#[tokio::test]
async fn a_failing_first_step_creates_no_next_step() {
    let f = fixture();
    let mut job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "permanent"}), 3);
    let step = longrun_core::chain::ChainStep {
        job_type: "sleep".into(),
        input: json!({"seconds": 0}),
    };
    job.chain = Some(longrun_core::chain::ChainLink::first(&job.id, vec![step]));
    f.store.insert(job.clone());
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let failed = reload(&f, &job).await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(f.store.get(&JobId::next_in_chain(&job.id)).await.unwrap(), None);
    assert_eq!(f.store.len(), 1, "no step created");
    assert!(f.queue.sent().is_empty(), "nothing sent");
    assert_eq!(longrun_core::chain::next_job_id(&failed), None);
}

/// A job that succeeds although its owner asked to cancel it while it was
/// finishing: the cancel request reaches the store after the run's last
/// look at it.
struct CancelledAsItSucceeds(Arc<MemoryJobStore>);

#[longrun_core::async_trait]
impl longrun_core::job_types::JobHandler for CancelledAsItSucceeds {
    fn job_type(&self) -> &'static str {
        "cancelled_as_it_succeeds"
    }
    fn validate(&self, _: &Value) -> Result<(), Vec<longrun_core::api::FieldError>> {
        Ok(())
    }
    async fn run(&self, ctx: &JobContext, _: &Value) -> Result<Vec<longrun_core::ResultObject>, JobError> {
        let asked = self.0.request_cancel(ctx.job_id(), now_ms()).await.unwrap();
        assert!(
            matches!(asked, longrun_core::ports::CancelOutcome::Requested(_)),
            "{asked:?}"
        );
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_step_asked_to_cancel_as_it_succeeds_neither_creates_nor_sends_a_next_step() {
    let mut f = fixture();
    let mut registry = longrun_jobs::standard(&f.deps.config);
    registry.register(Arc::new(CancelledAsItSucceeds(f.store.clone())));
    f.deps.registry = Arc::new(registry);
    let mut job = add_job(&f, "cancelled_as_it_succeeds", json!({}), 3);
    let step = longrun_core::chain::ChainStep {
        job_type: "sleep".into(),
        input: json!({"seconds": 0}),
    };
    job.chain = Some(longrun_core::chain::ChainLink::first(&job.id, vec![step]));
    f.store.insert(job.clone());
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let ended = reload(&f, &job).await;
    assert_eq!((ended.status, ended.cancel_requested), (JobStatus::Succeeded, true));
    assert_eq!(
        f.store.get(&JobId::next_in_chain(&job.id)).await.unwrap(),
        None,
        "the cancel stops the chain"
    );
    assert!(
        f.queue.sent().is_empty(),
        "no message for a step that was never created: {:?}",
        f.queue.sent()
    );
}
