//! Contract cases of the ends that are not a run's own: cancel, dead
//! letters, the claim and dead-letter rules against the record's, the due
//! index the reconciler reads.

use crate::*;

pub(crate) async fn cancel_ends_queued_jobs_and_flags_running_ones(store: &dyn JobStore) {
    let now = now_ms();
    let queued = new_job(now);
    store.create(&queued, now).await.unwrap();
    match store.request_cancel(&queued.id, now + 1).await.unwrap() {
        CancelOutcome::Cancelled(job) => {
            assert_eq!(job.status, JobStatus::Cancelled);
            assert_eq!((job.finished_at, job.due_at), (Some(now + 1), None));
        }
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(matches!(
        store.request_cancel(&queued.id, now + 2).await.unwrap(),
        CancelOutcome::AlreadyFinished(_)
    ));
    assert!(
        matches!(
            store
                .claim(&queued.id, &Lease::new(now + 60_000), now + 3)
                .await
                .unwrap(),
            ClaimOutcome::NotClaimable(_)
        ),
        "a cancelled job never starts"
    );

    let running = new_job(now);
    store.create(&running, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&running.id, &lease, now).await.unwrap());
    match store.request_cancel(&running.id, now + 1).await.unwrap() {
        CancelOutcome::Requested(job) => assert_eq!((job.status, job.cancel_requested), (JobStatus::Running, true)),
        other => panic!("expected Requested, got {other:?}"),
    }
    let update = ProgressUpdate {
        progress: 1,
        message: None,
        checkpoint: None,
    };
    assert!(
        store
            .record_progress(&running.id, &lease.token, &update, now + 2)
            .await
            .unwrap()
            .cancel_requested
    );
    assert_eq!(
        store.request_cancel(&JobId::random(), now).await.unwrap(),
        CancelOutcome::NotFound
    );
}

pub(crate) async fn dead_lettering_spares_live_and_ended_jobs(store: &dyn JobStore) {
    let now = now_ms();
    let error = JobError::permanent("dead_lettered", "too many receives");
    let queued = new_job(now);
    store.create(&queued, now).await.unwrap();
    match store.dead_letter(&queued.id, &error, 0, now + 1).await.unwrap() {
        Transition::Done(job) => {
            assert_eq!(
                (job.status, job.error.as_ref()),
                (JobStatus::DeadLettered, Some(&error))
            );
            assert_eq!(job.due_at, None);
        }
        other => panic!("expected Done, got {other:?}"),
    }
    assert!(matches!(
        store.dead_letter(&queued.id, &error, 0, now + 2).await.unwrap(),
        Transition::Refused(_)
    ));

    let live = new_job(now);
    store.create(&live, now).await.unwrap();
    claimed(store.claim(&live.id, &Lease::new(now + 60_000), now).await.unwrap());
    assert!(matches!(
        store.dead_letter(&live.id, &error, 0, now + 1).await.unwrap(),
        Transition::Refused(_)
    ));
    match store.dead_letter(&live.id, &error, 0, now + 60_001).await.unwrap() {
        Transition::Done(job) => assert_eq!((job.status, job.lease_token), (JobStatus::DeadLettered, None)),
        other => panic!("an expired lease is a crash: {other:?}"),
    }
    assert_eq!(
        store.dead_letter(&JobId::random(), &error, 0, now).await.unwrap(),
        Transition::NotFound
    );

    // A job waiting out a retry backoff is alive: a stale dead letter spares it.
    let backing_off = new_job(now);
    store.create(&backing_off, now).await.unwrap();
    let lease = Lease::new(now + 60_000);
    claimed(store.claim(&backing_off.id, &lease, now).await.unwrap());
    let retry = Finish::Retry {
        error: JobError::retryable("flaky", "again"),
        run_at: now + 10_000,
        due_at: now + 70_000,
    };
    store
        .finish(&backing_off.id, &lease.token, &retry, now + 1)
        .await
        .unwrap();
    assert!(matches!(
        store.dead_letter(&backing_off.id, &error, 0, now + 2).await.unwrap(),
        Transition::Refused(_)
    ));
    assert!(matches!(
        store
            .dead_letter(&backing_off.id, &error, 0, now + 10_000)
            .await
            .unwrap(),
        Transition::Done(_)
    ));

    // Redrive: back to QUEUED, claimable again.
    match store
        .requeue_dead_lettered(&queued.id, now + 5, now + 60_000)
        .await
        .unwrap()
    {
        Transition::Done(job) => {
            assert_eq!(
                (job.status, job.due_at, job.finished_at),
                (JobStatus::Queued, Some(now + 60_000), None)
            );
            assert_eq!((job.attempts, job.cancel_requested), (0, false), "a fresh start");
            assert_eq!(job.started_at, None, "its timeout counts from the next start");
            assert_eq!(
                (job.takeovers, job.resends, job.generation),
                (0, 0, 1),
                "a new generation"
            );
            assert_eq!(job.expires_at, (now + 5) / 1000 + RETENTION_SECONDS);
        }
        other => panic!("expected Done, got {other:?}"),
    }
    assert!(
        matches!(
            store.dead_letter(&queued.id, &error, 0, now + 5).await.unwrap(),
            Transition::Refused(_)
        ),
        "a dead letter of the generation before the redrive is stale"
    );
    claimed(
        store
            .claim(&queued.id, &Lease::new(now + 60_000), now + 6)
            .await
            .unwrap(),
    );
    assert!(matches!(
        store
            .requeue_dead_lettered(&queued.id, now + 7, now + 60_000)
            .await
            .unwrap(),
        Transition::Refused(_)
    ));
}

/// Every combination of the fields the claim and dead-letter rules read.
fn rule_matrix(now: i64) -> Vec<JobRecord> {
    let mut records = Vec::new();
    for status in JobStatus::ALL {
        for run_at in [None, Some(now - 1_000), Some(now + 60_000)] {
            for cancel_requested in [false, true] {
                for lease_expires_at in [None, Some(now - 1_000), Some(now + 60_000)] {
                    let mut job = new_job(now - 5_000);
                    job.status = status;
                    job.run_at = run_at;
                    job.cancel_requested = cancel_requested;
                    job.lease_expires_at = lease_expires_at;
                    job.lease_token = lease_expires_at.map(|_| "someone".to_owned());
                    // Out of the due index: the rules do not read it, and the
                    // reconciler of a runtime sharing the table must not pick these up.
                    job.due_at = None;
                    if status.is_terminal() {
                        job.finished_at = Some(now - 2_000);
                    }
                    records.push(job);
                }
            }
        }
    }
    records
}

/// The store's claim, dead-letter and cancel conditions say what
/// `JobRecord::claimable_at`, `dead_letterable_at` and `unheld_at` say,
/// for every combination of the fields they read: the rules have one home.
pub(crate) async fn claim_and_dead_letter_conditions_follow_the_record_rules(store: &dyn JobStore) {
    let now = now_ms();
    let error = JobError::permanent("dead_lettered", "too many receives");
    let mut disagreements = Vec::new();
    for job in rule_matrix(now) {
        let state = format!(
            "{} run_at={:?} cancel_requested={} lease_expires_at={:?}",
            job.status,
            job.run_at.map(|t| t - now),
            job.cancel_requested,
            job.lease_expires_at.map(|t| t - now)
        );
        let mut for_claim = job.clone();
        for_claim.id = JobId::random();
        store.create(&for_claim, now).await.unwrap();
        let claimed = matches!(
            store
                .claim(&for_claim.id, &Lease::new(now + 60_000), now)
                .await
                .unwrap(),
            ClaimOutcome::Claimed(_)
        );
        if claimed != job.claimable_at(now) {
            disagreements.push(format!(
                "claim: store {claimed}, rule {} for {state}",
                job.claimable_at(now)
            ));
        }
        let mut for_dead_letter = job.clone();
        for_dead_letter.id = JobId::random();
        store.create(&for_dead_letter, now).await.unwrap();
        let dead = matches!(
            store.dead_letter(&for_dead_letter.id, &error, 0, now).await.unwrap(),
            Transition::Done(_)
        );
        if dead != job.dead_letterable_at(now) {
            disagreements.push(format!(
                "dead letter: store {dead}, rule {} for {state}",
                job.dead_letterable_at(now)
            ));
        }
        let mut for_cancel = job.clone();
        for_cancel.id = JobId::random();
        store.create(&for_cancel, now).await.unwrap();
        let ended = matches!(
            store.request_cancel(&for_cancel.id, now).await.unwrap(),
            CancelOutcome::Cancelled(_)
        );
        if ended != job.unheld_at(now) {
            disagreements.push(format!(
                "cancel at once: store {ended}, rule {} for {state}",
                job.unheld_at(now)
            ));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

pub(crate) async fn overdue_jobs_are_found_and_deferred_once(store: &dyn JobStore) {
    // Due far in the future, read "as of" later still: the reconciler of
    // the runtime sharing the emulator's table never sees these jobs as
    // overdue, so nothing races the deferrals below.
    let now = now_ms() + 10_000_000_000;
    let mut overdue = new_job(now - 200_000);
    overdue.due_at = Some(now - 100_000);
    store.create(&overdue, now_ms()).await.unwrap();
    let mut not_yet = new_job(now);
    not_yet.due_at = Some(now + 60_000);
    store.create(&not_yet, now_ms()).await.unwrap();
    let found = store.overdue(now, 100_000).await.unwrap();
    assert!(found.contains(&overdue.id));
    assert!(!found.contains(&not_yet.id));

    assert!(store
        .defer_due(&overdue.id, now - 100_000, now + 60_000, true)
        .await
        .unwrap());
    assert!(
        !store
            .defer_due(&overdue.id, now - 100_000, now + 90_000, true)
            .await
            .unwrap(),
        "only once"
    );
    let deferred = store.get(&overdue.id).await.unwrap().unwrap();
    assert_eq!((deferred.due_at, deferred.resends), (Some(now + 60_000), 1));
    assert!(!store.overdue(now, 10_000).await.unwrap().contains(&overdue.id));
    assert!(!store.defer_due(&JobId::random(), 1, 2, false).await.unwrap());
    assert!(store
        .defer_due(&overdue.id, now + 60_000, now + 120_000, false)
        .await
        .unwrap());
    assert_eq!(
        store.get(&overdue.id).await.unwrap().unwrap().resends,
        1,
        "a plain deferral is no resend"
    );
    let running = claimed(store.claim(&overdue.id, &Lease::new(now + 60_000), now).await.unwrap());
    assert_eq!(running.resends, 0, "a claim starts the count of resends again");
}
