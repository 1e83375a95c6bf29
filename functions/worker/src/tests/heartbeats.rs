//! Heartbeats: a silent job kept alive, told of a cancel, stopped when its
//! lease is taken.

use super::*;

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
async fn a_cancel_the_heartbeat_sees_stops_a_job_that_never_looks_at_its_signal() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "deaf", json!({"seconds": 4}), 3);
    change_later(&f, &job, 300, |running| running.cancel_requested = true);
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(
        reload(&f, &job).await.status,
        JobStatus::Cancelled,
        "stopped at the heartbeat, not left to succeed at its end"
    );
}

#[tokio::test]
async fn a_job_whose_lease_is_taken_stops_and_leaves_the_record_to_the_new_holder() {
    let f = heartbeat_fixture();
    let job = add_job(&f, "silent", json!({"seconds": 30}), 3);
    change_later(&f, &job, 300, |stolen| stolen.lease_token = Some("new-holder".into()));
    let response = handle(&f.deps, event(vec![job_message(&job, "m1")]), &context(60)).await;
    assert!(failures(&response).is_empty(), "the old holder's message is done with");
    let current = reload(&f, &job).await;
    assert_eq!(current.status, JobStatus::Running);
    assert_eq!(current.lease_token.as_deref(), Some("new-holder"));
}
