//! Contract cases of the job records through a run: create, claim, takeover,
//! progress and checkpoints, and every way a run ends under its lease.

use crate::*;

pub(crate) async fn create_is_conditional_and_returns_the_existing_record(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    assert_eq!(store.create(&job, now).await.unwrap(), CreateOutcome::Created);
    let mut again = job.clone();
    again.request_hash = "hash-2".into();
    match store.create(&again, now).await.unwrap() {
        CreateOutcome::Exists(existing) => assert_eq!(*existing, job),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(store.get(&job.id).await.unwrap(), Some(job));
    assert_eq!(store.get(&JobId::random()).await.unwrap(), None);
}

pub(crate) async fn an_expired_record_is_replaced(store: &dyn JobStore) {
    let now = now_ms();
    let mut old = new_job(now - 10_000_000);
    old.expires_at = (now - 5_000_000) / 1000;
    store.create(&old, now - 10_000_000).await.unwrap();
    let mut fresh = new_job(now);
    fresh.id = old.id.clone();
    fresh.request_hash = "fresh".into();
    assert_eq!(store.create(&fresh, now).await.unwrap(), CreateOutcome::Created);
    assert_eq!(store.get(&old.id).await.unwrap().unwrap().request_hash, "fresh");
}

pub(crate) async fn a_claim_takes_the_lease_once(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    let running = claimed(store.claim(&job.id, &lease, now).await.unwrap());
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.attempts, 1);
    assert_eq!(running.lease_token.as_deref(), Some(lease.token.as_str()));
    assert_eq!(running.lease_expires_at, Some(lease.expires_at));
    assert_eq!(running.due_at, Some(lease.expires_at));
    assert_eq!(running.started_at, Some(now));
    assert_eq!(running.version, job.version + 1);
    assert_eq!(store.get(&job.id).await.unwrap(), Some(running.clone()));

    match store.claim(&job.id, &Lease::new(now + 60_000), now + 1).await.unwrap() {
        ClaimOutcome::NotClaimable(current) => assert_eq!(*current, running),
        other => panic!("a live lease must not be claimed again: {other:?}"),
    }
    assert_eq!(
        store.claim(&JobId::random(), &lease, now).await.unwrap(),
        ClaimOutcome::NotFound
    );
}

pub(crate) async fn a_delayed_job_is_claimable_only_when_due(store: &dyn JobStore) {
    let now = now_ms();
    let mut job = new_job(now);
    job.run_at = Some(now + 5_000);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    assert!(matches!(
        store.claim(&job.id, &lease, now).await.unwrap(),
        ClaimOutcome::NotClaimable(_)
    ));
    claimed(store.claim(&job.id, &lease, now + 5_000).await.unwrap());
}

pub(crate) async fn an_expired_lease_is_taken_over_and_fences_the_old_holder(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let first = Lease::new(now + 10_000);
    claimed(store.claim(&job.id, &first, now).await.unwrap());
    let second = Lease::new(now + 80_000);
    let taken = claimed(store.claim(&job.id, &second, now + 20_000).await.unwrap());
    assert_eq!(
        (taken.attempts, taken.takeovers),
        (1, 1),
        "a takeover of a crashed run is counted as one, and uses no attempt"
    );
    assert_eq!(taken.started_at, Some(now), "started_at keeps the first start");

    let update = ProgressUpdate {
        progress: 50,
        message: Some("zombie".into()),
        checkpoint: None,
    };
    assert!(matches!(
        store
            .record_progress(&job.id, &first.token, &update, now + 21_000)
            .await,
        Err(StoreError::LeaseLost)
    ));
    let finish = Finish::Succeeded {
        results: Vec::new(),
        next: None,
    };
    assert!(matches!(
        store.finish(&job.id, &first.token, &finish, now + 21_000).await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.get(&job.id).await.unwrap(), Some(taken));
}

pub(crate) async fn progress_and_checkpoints_are_written_under_the_lease(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let update = ProgressUpdate {
        progress: 40,
        message: Some("forty".into()),
        checkpoint: Some(json!({"offset": 1234})),
    };
    let ack = store
        .record_progress(&job.id, &lease.token, &update, now + 1)
        .await
        .unwrap();
    assert!(!ack.cancel_requested);
    let without_checkpoint = ProgressUpdate {
        progress: 45,
        message: None,
        checkpoint: None,
    };
    store
        .record_progress(&job.id, &lease.token, &without_checkpoint, now + 2)
        .await
        .unwrap();
    let current = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(current.progress, 45);
    assert_eq!(current.progress_message, None);
    assert_eq!(
        current.checkpoint,
        Some(json!({"offset": 1234})),
        "a checkpoint stays until replaced"
    );
    assert_eq!(current.updated_at, now + 2);
}

pub(crate) async fn success_ends_the_run_and_leaves_the_due_index(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let results = vec![ResultObject {
        name: "out.json".into(),
        key: format!("results/{}/out.json", job.id),
        content_type: "application/json".into(),
        bytes: 12,
    }];
    let finish = Finish::Succeeded {
        results: results.clone(),
        next: None,
    };
    let done = store.finish(&job.id, &lease.token, &finish, now + 500).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.results, results);
    assert_eq!(done.progress, 100);
    assert_eq!(
        (done.lease_token.as_deref(), done.lease_expires_at, done.due_at),
        (None, None, None)
    );
    assert_eq!(done.finished_at, Some(now + 500));
    assert_eq!(done.expires_at, (now + 500) / 1000 + RETENTION_SECONDS);
    assert_eq!(store.get(&job.id).await.unwrap(), Some(done.clone()));
    // The same end sent again (its answer lost) changes nothing; another
    // run's is fenced off (cases::lost_answers).
    assert_eq!(
        store.finish(&job.id, &lease.token, &finish, now + 600).await.unwrap(),
        done
    );
    assert!(matches!(
        store
            .finish(&job.id, &Lease::new(now + 60_000).token, &finish, now + 600)
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store
            .claim(&job.id, &Lease::new(now + 90_000), now + 700)
            .await
            .unwrap(),
        ClaimOutcome::NotClaimable(_)
    ));
}

pub(crate) async fn a_retry_requeues_until_run_at(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let error = JobError::retryable("flaky", "try again");
    let finish = Finish::Retry {
        error: error.clone(),
        run_at: now + 4_000,
        due_at: now + 64_000,
    };
    let queued = store.finish(&job.id, &lease.token, &finish, now + 100).await.unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.error, Some(error));
    assert_eq!(queued.run_at, Some(now + 4_000));
    assert_eq!(queued.due_at, Some(now + 64_000));
    assert_eq!(queued.lease_token, None);
    assert_eq!(queued.finished_at, None);
    assert!(matches!(
        store
            .claim(&job.id, &Lease::new(now + 60_000), now + 3_999)
            .await
            .unwrap(),
        ClaimOutcome::NotClaimable(_)
    ));
    let second = claimed(
        store
            .claim(&job.id, &Lease::new(now + 60_000), now + 4_000)
            .await
            .unwrap(),
    );
    assert_eq!(second.attempts, 2);
}

pub(crate) async fn a_continuation_requeues_without_using_an_attempt_and_may_move_queue(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let queued = store
        .finish(
            &job.id,
            &lease.token,
            &Finish::Continuation {
                run_at: now + 1_000,
                due_at: now + 61_000,
                stalled_runs: 2,
                queue: None,
            },
            now + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        (queued.status, queued.attempts, queued.continuing),
        (JobStatus::Queued, 1, true),
        "the attempt under way is still counted while the job waits to continue it"
    );
    assert_eq!(store.get(&job.id).await.unwrap().unwrap().attempts, 1);
    assert_eq!(queued.stalled_runs, 2, "the count of runs without a checkpoint is kept");
    assert_eq!(store.get(&job.id).await.unwrap().unwrap().stalled_runs, 2);
    assert_eq!((queued.run_at, queued.due_at), (Some(now + 1_000), Some(now + 61_000)));
    assert_eq!((queued.lease_token, queued.finished_at), (None, None));
    let again = claimed(
        store
            .claim(&job.id, &Lease::new(now + 60_000), now + 1_000)
            .await
            .unwrap(),
    );
    assert_eq!((again.attempts, again.continuing), (1, false));

    // Taken over after a crash, then continued: still the one attempt.
    let crashed_at = now + 70_000;
    let taken = claimed(
        store
            .claim(&job.id, &Lease::new(crashed_at + 60_000), crashed_at)
            .await
            .unwrap(),
    );
    assert_eq!((taken.attempts, taken.takeovers), (1, 1));
    let queued = store
        .finish(
            &job.id,
            taken.lease_token.as_deref().unwrap(),
            &Finish::Continuation {
                run_at: crashed_at + 1_000,
                due_at: crashed_at + 61_000,
                stalled_runs: 0,
                queue: Some("slow".into()),
            },
            crashed_at + 10,
        )
        .await
        .unwrap();
    assert_eq!((queued.attempts, queued.takeovers), (1, 1));
    // Promoted in the same write: the record names the queue it goes on in.
    assert_eq!((queued.queue.as_str(), job.queue.as_str()), ("slow", "fast"));
    assert_eq!(store.get(&job.id).await.unwrap().unwrap().queue, "slow");
    let resumed = claimed(
        store
            .claim(&job.id, &Lease::new(crashed_at + 120_000), crashed_at + 1_000)
            .await
            .unwrap(),
    );
    assert_eq!((resumed.attempts, resumed.takeovers, resumed.continuing), (1, 1, false));
}

pub(crate) async fn a_failure_keeps_its_coded_error(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let error = JobError::permanent("bad_input", "nope");
    let failed = store
        .finish(&job.id, &lease.token, &Finish::Failed { error: error.clone() }, now + 1)
        .await
        .unwrap();
    assert_eq!((failed.status, failed.error), (JobStatus::Failed, Some(error)));
}

pub(crate) async fn heartbeats_extend_the_lease_under_fencing(store: &dyn JobStore) {
    let now = now_ms();
    let job = new_job(now);
    store.create(&job, now).await.unwrap();
    let lease = Lease::new(now + 10_000);
    claimed(store.claim(&job.id, &lease, now).await.unwrap());
    let extended = Lease {
        token: lease.token.clone(),
        expires_at: now + 70_000,
    };
    let ack = store.extend_lease(&job.id, &extended, now + 5_000).await.unwrap();
    assert!(!ack.cancel_requested);
    let current = store.get(&job.id).await.unwrap().unwrap();
    assert_eq!(
        (current.lease_expires_at, current.due_at),
        (Some(now + 70_000), Some(now + 70_000))
    );
    assert!(
        matches!(
            store
                .claim(&job.id, &Lease::new(now + 90_000), now + 20_000)
                .await
                .unwrap(),
            ClaimOutcome::NotClaimable(_)
        ),
        "the extended lease is still live"
    );
    let stranger = Lease::new(now + 99_000);
    assert!(matches!(
        store.extend_lease(&job.id, &stranger, now + 6_000).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store.request_cancel(&job.id, now + 7_000).await.unwrap(),
        CancelOutcome::Requested(_)
    ));
    assert!(
        store
            .extend_lease(&job.id, &extended, now + 8_000)
            .await
            .unwrap()
            .cancel_requested
    );
}
