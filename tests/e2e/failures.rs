//! Failure handling end to end: retries with backoff, heartbeats, crashes,
//! dead letters and redrive, the reconciler, cancellation. Each test injects
//! the failure, then checks that nothing was lost and nothing ran twice.

use std::time::{Duration, Instant};

use longrun_e2e::Stack;
use serde_json::{json, Value};

/// A job view's RFC 3339 time field, in epoch milliseconds.
fn millis(view: &Value, field: &str) -> i64 {
    let text = view[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {view}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{field} = {text:?}: {e}"))
        .timestamp_millis()
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn a_job_failing_twice_then_succeeding_backs_off_between_attempts() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0, "fail": "retryable", "fail_attempts": 2}, "max_attempts": 3}))
        .await;
    // Between attempts the job is QUEUED with its error, attempt count and the time it runs again.
    let waiting = stack
        .wait_until(&id, Duration::from_secs(30), |v| {
            v["status"] == "QUEUED" && v["attempts"] == 1
        })
        .await;
    assert_eq!(waiting["error"]["code"], "sleep_failed");
    assert_eq!(waiting["error"]["retryable"], true);
    let backoff_ms = millis(&waiting, "run_at") - millis(&waiting, "updated_at");
    assert!(backoff_ms >= 900, "first backoff {backoff_ms} ms");

    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["attempts"], 3);
    // Two backoffs of at least 1 s each (RetryBaseSeconds=1) separate the three runs.
    let total_ms = millis(&done, "finished_at") - millis(&done, "started_at");
    assert!(total_ms >= 2_000, "three attempts in {total_ms} ms: no backoff?");
    assert_eq!(stack.result_keys(&id).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn a_poison_message_is_kept_not_lost() {
    let stack = Stack::from_env().await;
    let marker = format!("poison-{}", stack.owner);
    stack
        .send_message(&stack.slow_queue_url, &format!("{{\"not\": \"{marker}\"}}"))
        .await;
    let started = Instant::now();
    loop {
        let listed = stack
            .s3
            .list_objects_v2()
            .bucket(&stack.bucket)
            .prefix("dead-letters/")
            .send()
            .await
            .unwrap();
        let mut found = false;
        for key in listed.contents().iter().filter_map(|o| o.key()) {
            let body = stack
                .s3
                .get_object()
                .bucket(&stack.bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            let bytes = body.body.collect().await.unwrap().into_bytes();
            found |= String::from_utf8_lossy(&bytes).contains(&marker);
        }
        if found {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the poison message was not kept"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn heartbeats_keep_a_job_longer_than_its_lease_and_visibility_on_one_worker() {
    let stack = Stack::from_env().await;
    // LeaseSeconds=4: the message is hidden for 9 s at a time, the job runs 12 s.
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 12}}))
        .await;
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["attempts"], 1, "one run only");
    let body: Value = serde_json::from_slice(&stack.download(done["result_url"].as_str().unwrap()).await).unwrap();
    assert_eq!(body["resumed_from_ms"], 0);
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn the_same_message_delivered_to_several_workers_at_once_runs_once() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 1}}))
        .await;
    let message = json!({"job_id": id, "enqueued_at": 0}).to_string();
    // Five copies in the queue together: the pollers (concurrency 10) take them at once.
    for _ in 0..5 {
        stack.send_message(&stack.fast_queue_url, &message).await;
    }
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED");
    stack
        .wait_queue_drained(&stack.fast_queue_url, Duration::from_secs(60))
        .await;
    assert_eq!(stack.job(&id).await["attempts"], 1);
    assert_eq!(stack.result_keys(&id).await.len(), 1);
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn cancel_before_start_and_while_running() {
    let stack = Stack::from_env().await;
    let queued = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 1}, "delay_seconds": 4}))
        .await;
    let answer = stack.cancel(&queued).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "CANCELLED");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = stack.job(&queued).await;
    assert_eq!(
        (later["status"].as_str(), later["attempts"].as_u64()),
        (Some("CANCELLED"), Some(0)),
        "never started"
    );

    let running = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 30}}))
        .await;
    stack
        .wait_until(&running, Duration::from_secs(30), |v| v["status"] == "RUNNING")
        .await;
    let asked = Instant::now();
    let answer = stack.cancel(&running).await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.body["cancel_requested"], true);
    let done = stack.wait_terminal(&running, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "CANCELLED");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopped at its next progress write"
    );
    assert!(stack.result_keys(&running).await.is_empty());

    let again = stack.cancel(&running).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.header("content-type"), Some("application/problem+json"));
}
