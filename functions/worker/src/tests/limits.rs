//! Per-key limits in the worker: a job over its limit waits without being
//! claimed, a freed slot wakes the oldest waiter, a slot is kept by the
//! heartbeat and given back however the run ends.

use super::*;
use longrun_core::limits::LimitState;
use longrun_core::ports::LimitSlots;

fn limited_fixture(limits: &str, extra: &[(&str, &str)]) -> Fixture {
    let mut f = fixture();
    let mut vars = vec![("LIMITS", limits), ("PROGRESS_INTERVAL_MS", "0")];
    vars.extend_from_slice(extra);
    f.deps.config = Arc::new(longrun_core::fixtures::config(&vars));
    f.deps.registry = Arc::new(longrun_jobs::standard(&f.deps.config));
    f
}

fn limited_job(f: &Fixture, seconds: f64, key: &str) -> JobRecord {
    let mut job = longrun_core::fixtures::queued_job("alice", "sleep", json!({ "seconds": seconds }));
    job.limit = Some(key.to_owned());
    f.store.insert(job.clone());
    job
}

async fn limit_state(f: &Fixture, key: &str) -> LimitState {
    f.store.limit_state(key).await.unwrap()
}

#[tokio::test]
async fn a_job_over_its_limit_waits_unclaimed_and_the_freed_slot_wakes_it() {
    let f = limited_fixture("one:concurrency=1", &[]);
    let first = limited_job(&f, 0.3, "one|*");
    let second = limited_job(&f, 0.3, "one|*");
    let response = handle(
        &f.deps,
        event(vec![job_message(&first, "m1"), job_message(&second, "m2")]),
        &context(60),
    )
    .await;
    assert!(failures(&response).is_empty(), "no receive is spent: {response:?}");
    let (a, b) = (reload(&f, &first).await, reload(&f, &second).await);
    let (ran, waited) = if a.status == JobStatus::Succeeded {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(ran.status, JobStatus::Succeeded);
    assert_eq!(
        (waited.status, waited.attempts),
        (JobStatus::Queued, 0),
        "never claimed: {waited:?}"
    );
    // Its own message comes back later; the freed slot woke it at once.
    let for_waiter: Vec<_> = f
        .queue
        .sent()
        .into_iter()
        .filter(|m| m.message.job_id == waited.id)
        .collect();
    let delays: Vec<u32> = for_waiter.iter().map(|m| m.delay_seconds).collect();
    assert_eq!(
        delays,
        vec![30, 0],
        "passed on to come back, then woken: {for_waiter:?}"
    );
    assert!(for_waiter.iter().all(|m| m.message.limit.as_deref() == Some("one|*")));
    let state = limit_state(&f, "one|*").await;
    assert!(state.holders.is_empty(), "the run gave its slot back: {state:?}");
    assert!(state.waiting.contains_key(&waited.id.to_string()));
    // The wake-up runs it.
    let wake = serde_json::to_string(&for_waiter[1].message).unwrap();
    let response = handle(&f.deps, event(vec![message("m3", &wake)]), &context(60)).await;
    assert!(failures(&response).is_empty());
    let waited = reload(&f, &waited).await;
    assert_eq!(waited.status, JobStatus::Succeeded);
    assert!(
        waited.started_at.unwrap() >= ran.finished_at.unwrap(),
        "one at a time: {ran:?} / {waited:?}"
    );
    assert_eq!(
        limit_state(&f, "one|*").await,
        LimitState::default(),
        "nothing held, nobody waits"
    );
}

#[tokio::test]
async fn a_rate_lets_its_starts_through_and_passes_the_next_on_until_one_frees() {
    let f = limited_fixture("api:rate=2/60s", &[]);
    let jobs: Vec<JobRecord> = (0..3).map(|_| limited_job(&f, 0.0, "api|*")).collect();
    for (i, job) in jobs.iter().enumerate() {
        handle(&f.deps, event(vec![job_message(job, &format!("m{i}"))]), &context(60)).await;
    }
    let statuses: Vec<JobStatus> = futures_statuses(&f, &jobs).await;
    assert_eq!(
        statuses,
        vec![JobStatus::Succeeded, JobStatus::Succeeded, JobStatus::Queued]
    );
    let passed_on: Vec<u32> = f
        .queue
        .sent()
        .into_iter()
        .filter(|m| m.message.job_id == jobs[2].id)
        .map(|m| m.delay_seconds)
        .collect();
    assert_eq!(
        passed_on,
        vec![30],
        "back when the poll interval ends (the token frees in 60 s)"
    );
}

async fn futures_statuses(f: &Fixture, jobs: &[JobRecord]) -> Vec<JobStatus> {
    let mut statuses = Vec::new();
    for job in jobs {
        statuses.push(reload(f, job).await.status);
    }
    statuses
}

#[tokio::test]
async fn a_duplicate_message_of_a_running_job_leaves_its_slot_alone() {
    let f = limited_fixture("one:concurrency=1", &[]);
    let job = limited_job(&f, 0.5, "one|*");
    let first = tokio::spawn({
        let deps = f.deps.clone();
        let m = job_message(&job, "m1");
        async move { handle(&deps, event(vec![m]), &context(60)).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    handle(&f.deps, event(vec![job_message(&job, "m2")]), &context(60)).await;
    let state = limit_state(&f, "one|*").await;
    assert_eq!(
        state.holders.len(),
        1,
        "the running job still holds its slot: {state:?}"
    );
    first.await.unwrap();
    assert_eq!(reload(&f, &job).await.status, JobStatus::Succeeded);
    assert!(limit_state(&f, "one|*").await.holders.is_empty());
}

#[tokio::test]
async fn a_slot_is_kept_as_long_as_the_lease_by_every_heartbeat() {
    let f = limited_fixture(
        "one:concurrency=1",
        &[("LEASE_SECONDS", "2"), ("HEARTBEAT_SECONDS", "1")],
    );
    let job = limited_job(&f, 3.0, "one|*");
    let run = tokio::spawn({
        let deps = f.deps.clone();
        let m = job_message(&job, "m1");
        async move { handle(&deps, event(vec![m]), &context(60)).await }
    });
    // Past the first lease's two seconds: the slot is still held, by a later expiry.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let state = limit_state(&f, "one|*").await;
    let holder = state.holders.get(&job.id.to_string()).expect("still held");
    assert!(holder.until > now_ms(), "{holder:?}");
    let other = limited_job(&f, 0.0, "one|*");
    handle(&f.deps, event(vec![job_message(&other, "m2")]), &context(60)).await;
    assert_eq!(
        reload(&f, &other).await.status,
        JobStatus::Queued,
        "no room while it runs"
    );
    run.await.unwrap();
    assert_eq!(reload(&f, &job).await.status, JobStatus::Succeeded);
}

#[tokio::test]
async fn a_stale_message_of_a_job_that_ran_meanwhile_leaves_the_line_instead_of_coming_back() {
    let f = limited_fixture("one:concurrency=1", &[]);
    let busy = limited_job(&f, 0.5, "one|*");
    let run = tokio::spawn({
        let deps = f.deps.clone();
        let m = job_message(&busy, "m1");
        async move { handle(&deps, event(vec![m]), &context(60)).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A job woken and run earlier: its own delayed message comes back now,
    // while the limit is full.
    let mut done = limited_job(&f, 0.0, "one|*");
    done.status = JobStatus::Succeeded;
    done.due_at = None;
    f.store.insert(done.clone());
    let response = handle(&f.deps, event(vec![job_message(&done, "m2")]), &context(60)).await;
    assert!(failures(&response).is_empty());
    assert!(
        f.queue.sent().iter().all(|m| m.message.job_id != done.id),
        "not passed on again: {:?}",
        f.queue.sent()
    );
    let state = limit_state(&f, "one|*").await;
    assert!(
        !state.waiting.contains_key(&done.id.to_string()),
        "out of the line: {state:?}"
    );
    run.await.unwrap();
}
