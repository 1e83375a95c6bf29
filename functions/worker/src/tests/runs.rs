//! A run from delivery to its end: success, retries, failures, poison,
//! panics, takeovers, timeouts, continuations, cancels.

use super::*;

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
    assert_eq!(done.lease_token, None);
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
    assert_eq!(still.lease_token.as_deref(), Some(lease.token.as_str()));
}

#[tokio::test]
async fn a_retry_whose_fresh_message_cannot_be_sent_is_left_to_the_reconciler_not_redelivered() {
    let f = fixture();
    let job = add_job(&f, "sleep", json!({"seconds": 0, "fail": "retryable"}), 3);
    f.queue.fail_next_sends(1);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(
        failures(&response).is_empty(),
        "acknowledged: a queue outage must not add up to the receive count"
    );
    let queued = reload(&f, &job).await;
    assert_eq!(queued.status, JobStatus::Queued);
    assert!(
        queued.due_at.is_some_and(|due| due > queued.run_at.unwrap()),
        "in the due index, for the reconciler to send once overdue"
    );
    assert!(f.queue.sent().is_empty());
    assert!(
        f.queue.visibility_changes().is_empty(),
        "the old message is not hidden for a redelivery"
    );
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
    assert_eq!(queued.lease_token, None);
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
    crashed.lease_token = Some(dead.token);
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
    assert_eq!(
        (queued.attempts, queued.continuing),
        (1, true),
        "the attempt goes on in the next invocation; its claim is no new one"
    );
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
    assert_eq!(
        (resumed.status, resumed.attempts),
        (JobStatus::Queued, 1),
        "one attempt over two invocations"
    );
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
    crashed.lease_token = Some("dead".into());
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
