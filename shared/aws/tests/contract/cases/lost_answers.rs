//! Contract cases of writes sent again because the answer to the first send
//! was lost (an SDK retry, the worker's own retry of its end): the second
//! send finds the first applied and does what follows it, instead of
//! taking it for a lost lease. Run with owner quotas on.

use crate::*;

pub(crate) async fn an_end_sent_again_after_a_lost_answer_is_recognised_and_releases_its_slot(store: &dyn JobStore) {
    let now = now_ms();
    let mut job = new_job(now);
    job.owner = format!("lost-answer-{}", uuid::Uuid::new_v4());
    store.create(&job, now).await.unwrap();
    store.reserve_slot(&job.owner, &job.id, 5).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let done = Finish::Succeeded {
        results: Vec::new(),
        next: None,
    };
    let first = store.finish(&job.id, &lease.token, &done, now + 10).await.unwrap();
    assert_eq!(first.status, JobStatus::Succeeded);
    // The first answer was lost, so what follows the write (the release)
    // never happened: the slot is still held.
    store.reserve_slot(&job.owner, &job.id, 5).await.unwrap();
    let again = store
        .finish(&job.id, &lease.token, &done, now + 20)
        .await
        .expect("the run's own end, found applied");
    assert_eq!(
        (again.status, again.finished_at),
        (JobStatus::Succeeded, Some(now + 10))
    );
    assert!(
        store.active_slots(&job.owner).await.unwrap().is_empty(),
        "the recognised end released the slot"
    );

    // Another run's token, or another end, is still fenced off.
    let stranger = Lease::new(now + 60_000);
    assert!(
        matches!(
            store.finish(&job.id, &stranger.token, &done, now + 30).await,
            Err(StoreError::LeaseLost)
        ),
        "fenced off"
    );
    assert!(
        matches!(
            store.finish(&job.id, &lease.token, &Finish::Cancelled, now + 30).await,
            Err(StoreError::LeaseLost)
        ),
        "fenced off"
    );
}

pub(crate) async fn a_retry_sent_again_after_a_lost_answer_is_recognised_until_the_job_is_claimed(
    store: &dyn JobStore,
) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let retry = Finish::Retry {
        error: JobError::retryable("flaky", "try again"),
        run_at: now + 100,
        due_at: now + 5_000,
    };
    store.finish(&job.id, &lease.token, &retry, now + 10).await.unwrap();
    let again = store.finish(&job.id, &lease.token, &retry, now + 20).await.unwrap();
    assert_eq!(again.status, JobStatus::Queued);
    // Once the next run holds the job, the old run's end is its no more.
    claimed(
        store
            .claim(&job.id, &Lease::new(now + 60_000), now + 200)
            .await
            .unwrap(),
    );
    assert!(
        matches!(
            store.finish(&job.id, &lease.token, &retry, now + 300).await,
            Err(StoreError::LeaseLost)
        ),
        "fenced off"
    );
}

pub(crate) async fn a_cancel_or_dead_letter_sent_again_is_recognised_and_releases_its_slot(store: &dyn JobStore) {
    let now = now_ms();
    let owner = format!("lost-answer-{}", uuid::Uuid::new_v4());
    let mut queued = new_job(now);
    queued.owner = owner.clone();
    store.create(&queued, now).await.unwrap();
    store.reserve_slot(&owner, &queued.id, 5).await.unwrap();
    assert!(matches!(
        store.request_cancel(&queued.id, now + 1).await.unwrap(),
        CancelOutcome::Cancelled(_)
    ));
    // The answer was lost: the slot is still held, and the same request is sent again.
    store.reserve_slot(&owner, &queued.id, 5).await.unwrap();
    match store.request_cancel(&queued.id, now + 1).await.unwrap() {
        CancelOutcome::Cancelled(job) => assert_eq!(job.finished_at, Some(now + 1)),
        other => panic!("the cancel that worked is not a 409: {other:?}"),
    }
    assert!(store.active_slots(&owner).await.unwrap().is_empty());
    // A later cancel is another request: the job had already ended.
    assert!(matches!(
        store.request_cancel(&queued.id, now + 2).await.unwrap(),
        CancelOutcome::AlreadyFinished(_)
    ));

    let mut lost = new_job(now);
    lost.owner = owner.clone();
    store.create(&lost, now).await.unwrap();
    store.reserve_slot(&owner, &lost.id, 5).await.unwrap();
    let error = JobError::permanent("dead_lettered", "its message reached the dead-letter queue");
    let late = now + 10 * 60_000;
    assert!(matches!(
        store.dead_letter(&lost.id, &error, 0, late).await.unwrap(),
        Transition::Done(_)
    ));
    store.reserve_slot(&owner, &lost.id, 5).await.unwrap();
    match store.dead_letter(&lost.id, &error, 0, late).await.unwrap() {
        Transition::Done(job) => assert_eq!(job.status, JobStatus::DeadLettered),
        other => panic!("the dead letter that worked is recognised: {other:?}"),
    }
    assert!(store.active_slots(&owner).await.unwrap().is_empty());
    assert!(matches!(
        store.dead_letter(&lost.id, &error, 0, late + 1).await.unwrap(),
        Transition::Refused(_)
    ));
}
