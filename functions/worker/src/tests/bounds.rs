//! Bad input and bounds: bombs, long records, many groups, huge errors,
//! another owner's input, jobs that never checkpoint.

use super::*;

/// Caps small enough for a test to break: CSV records of 1 KiB, 10 report
/// groups, 1 MiB of image memory.
fn bomb_fixture() -> Fixture {
    let mut f = fixture();
    f.deps.config = Arc::new(longrun_core::fixtures::config(&[
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
            longrun_core::bytes::Bytes::from(longrun_core::fixtures::png_declaring(50_000, 50_000)),
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
    let mut job = add_job(&f, "silent", json!({"seconds": 600}), 3);
    // On the slow queue: nowhere to be promoted to.
    job.queue = "slow".into();
    f.store.insert(job.clone());
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

#[tokio::test]
async fn a_job_out_of_fast_worker_time_moves_to_the_slow_queue_and_its_stalls_are_counted_there() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent", json!({"seconds": 600}), 3);
    assert_eq!(
        (job.queue.as_str(), job.priority),
        ("fast", longrun_core::record::Priority::Normal)
    );
    // 4 s left, 3 s safety margin: about 1 s, then the fast worker's deadline.
    let response = handle(&f.deps, event(vec![job_message(&job, "fast")]), &context(4)).await;
    assert!(failures(&response).is_empty());
    let moved = reload(&f, &job).await;
    assert_eq!(
        (moved.status, moved.queue.as_str(), moved.stalled_runs, moved.attempts),
        (JobStatus::Queued, "slow", 0, 1),
        "promoted in the continuation's write; the fast run is no stall; no new attempt"
    );
    let sent = f.queue.sent();
    assert_eq!(
        sent.iter().map(|m| m.queue.as_str()).collect::<Vec<_>>(),
        ["slow"],
        "its message goes to the slow queue"
    );
    // On the slow queue it is not moved again, and stalls count from there.
    let max = f.deps.config.max_stalled_runs;
    for run in 1..=max {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let response = handle(
            &f.deps,
            event(vec![job_message(&job, &format!("slow{run}"))]),
            &context(4),
        )
        .await;
        assert!(failures(&response).is_empty());
        let now = reload(&f, &job).await;
        assert_eq!(now.queue, "slow", "run {run}");
        if run < max {
            assert_eq!((now.status, now.stalled_runs), (JobStatus::Queued, run), "run {run}");
        } else {
            assert_eq!(now.error.map(|e| e.code), Some(codes::NO_PROGRESS.to_owned()));
        }
    }
    assert!(f.queue.sent().iter().all(|m| m.queue == "slow"));
}
