//! Contract tests: the same cases against the in-memory adapters and the
//! AWS adapters on the emulator (DynamoDB, S3, SQS), so the fakes the unit
//! tests trust behave like the real thing.
//!
//! The AWS half is `#[ignore]`d for a plain `cargo test`; `make test` runs it
//! against the emulator with `LONGRUN_JOBS_TABLE` and `LONGRUN_JOBS_BUCKET`
//! naming resources created from `template.yaml`.

use std::sync::Arc;
use std::time::Duration;

use longrun_aws::{AwsClients, DynamoJobStore, S3ObjectStore, SqsJobQueue};
use longrun_core::bytes::Bytes;
use longrun_core::chain::{next_step, ChainLink, ChainStep};
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, JobMessage, JobQueue, JobStore, ObjectError, ObjectStore, QueueError,
    SlotOutcome, StoreError, StreamTicket, Transition,
};
use longrun_core::record::{Callback, Finish, JobError, Lease, ProgressUpdate};
use longrun_core::time::now_ms;
use longrun_core::webhook::signature::WebhookSecret;
use longrun_core::webhook::WebhookSecrets;
use longrun_core::{JobId, JobRecord, JobStatus, ResultObject};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// How long the stores under test keep an ended record: not the hour a new
/// record starts with, so every TTL written at an ending shows whose it is.
const RETENTION_SECONDS: i64 = 7200;

fn new_job(now: i64) -> JobRecord {
    let mut job = longrun_core::testing::queued_job_at(
        "contract",
        "sleep",
        json!({"seconds": 1, "nested": {"list": [1, 2.5, "x"]}}),
        now,
    );
    job.request_hash = "hash-1".into();
    job
}

fn claimed(outcome: ClaimOutcome) -> JobRecord {
    match outcome {
        ClaimOutcome::Claimed(job) => *job,
        other => panic!("expected a claim, got {other:?}"),
    }
}

mod cases {
    use super::*;

    pub async fn create_is_conditional_and_returns_the_existing_record(store: &dyn JobStore) {
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

    pub async fn an_expired_record_is_replaced(store: &dyn JobStore) {
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

    pub async fn a_claim_takes_the_lease_once(store: &dyn JobStore) {
        let now = now_ms();
        let job = new_job(now);
        store.create(&job, now).await.unwrap();
        let lease = Lease::new(now + 60_000);
        let running = claimed(store.claim(&job.id, &lease, now).await.unwrap());
        assert_eq!(running.status, JobStatus::Running);
        assert_eq!(running.attempts, 1);
        assert_eq!(running.lease_owner.as_deref(), Some(lease.owner.as_str()));
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

    pub async fn a_delayed_job_is_claimable_only_when_due(store: &dyn JobStore) {
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

    pub async fn an_expired_lease_is_taken_over_and_fences_the_old_holder(store: &dyn JobStore) {
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
                .record_progress(&job.id, &first.owner, &update, now + 21_000)
                .await,
            Err(StoreError::LeaseLost)
        ));
        let finish = Finish::Succeeded {
            results: Vec::new(),
            next: None,
        };
        assert!(matches!(
            store.finish(&job.id, &first.owner, &finish, now + 21_000).await,
            Err(StoreError::LeaseLost)
        ));
        assert_eq!(store.get(&job.id).await.unwrap(), Some(taken));
    }

    pub async fn progress_and_checkpoints_are_written_under_the_lease(store: &dyn JobStore) {
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
            .record_progress(&job.id, &lease.owner, &update, now + 1)
            .await
            .unwrap();
        assert!(!ack.cancel_requested);
        let without_checkpoint = ProgressUpdate {
            progress: 45,
            message: None,
            checkpoint: None,
        };
        store
            .record_progress(&job.id, &lease.owner, &without_checkpoint, now + 2)
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

    pub async fn success_ends_the_run_and_leaves_the_due_index(store: &dyn JobStore) {
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
        let done = store.finish(&job.id, &lease.owner, &finish, now + 500).await.unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.results, results);
        assert_eq!(done.progress, 100);
        assert_eq!(
            (done.lease_owner.as_deref(), done.lease_expires_at, done.due_at),
            (None, None, None)
        );
        assert_eq!(done.finished_at, Some(now + 500));
        assert_eq!(done.expires_at, (now + 500) / 1000 + RETENTION_SECONDS);
        assert_eq!(store.get(&job.id).await.unwrap(), Some(done));
        assert!(matches!(
            store.finish(&job.id, &lease.owner, &finish, now + 600).await,
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

    pub async fn a_retry_requeues_until_run_at(store: &dyn JobStore) {
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
        let queued = store.finish(&job.id, &lease.owner, &finish, now + 100).await.unwrap();
        assert_eq!(queued.status, JobStatus::Queued);
        assert_eq!(queued.error, Some(error));
        assert_eq!(queued.run_at, Some(now + 4_000));
        assert_eq!(queued.due_at, Some(now + 64_000));
        assert_eq!(queued.lease_owner, None);
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

    pub async fn a_continuation_requeues_without_using_an_attempt(store: &dyn JobStore) {
        let now = now_ms();
        let job = new_job(now);
        store.create(&job, now).await.unwrap();
        let lease = Lease::new(now + 60_000);
        claimed(store.claim(&job.id, &lease, now).await.unwrap());
        let queued = store
            .finish(
                &job.id,
                &lease.owner,
                &Finish::Continuation {
                    run_at: now + 1_000,
                    due_at: now + 61_000,
                    stalled_runs: 2,
                },
                now + 10,
            )
            .await
            .unwrap();
        assert_eq!((queued.status, queued.attempts), (JobStatus::Queued, 0));
        assert_eq!(queued.stalled_runs, 2, "the count of runs without a checkpoint is kept");
        assert_eq!(store.get(&job.id).await.unwrap().unwrap().stalled_runs, 2);
        assert_eq!((queued.run_at, queued.due_at), (Some(now + 1_000), Some(now + 61_000)));
        assert_eq!((queued.lease_owner, queued.finished_at), (None, None));
        let again = claimed(
            store
                .claim(&job.id, &Lease::new(now + 60_000), now + 1_000)
                .await
                .unwrap(),
        );
        assert_eq!(again.attempts, 1);
    }

    pub async fn a_failure_keeps_its_coded_error(store: &dyn JobStore) {
        let now = now_ms();
        let job = new_job(now);
        store.create(&job, now).await.unwrap();
        let lease = Lease::new(now + 60_000);
        claimed(store.claim(&job.id, &lease, now).await.unwrap());
        let error = JobError::permanent("bad_input", "nope");
        let failed = store
            .finish(&job.id, &lease.owner, &Finish::Failed { error: error.clone() }, now + 1)
            .await
            .unwrap();
        assert_eq!((failed.status, failed.error), (JobStatus::Failed, Some(error)));
    }

    pub async fn heartbeats_extend_the_lease_under_fencing(store: &dyn JobStore) {
        let now = now_ms();
        let job = new_job(now);
        store.create(&job, now).await.unwrap();
        let lease = Lease::new(now + 10_000);
        claimed(store.claim(&job.id, &lease, now).await.unwrap());
        let extended = Lease {
            owner: lease.owner.clone(),
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

    pub async fn cancel_ends_queued_jobs_and_flags_running_ones(store: &dyn JobStore) {
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
                .record_progress(&running.id, &lease.owner, &update, now + 2)
                .await
                .unwrap()
                .cancel_requested
        );
        assert_eq!(
            store.request_cancel(&JobId::random(), now).await.unwrap(),
            CancelOutcome::NotFound
        );
    }

    pub async fn dead_lettering_spares_live_and_ended_jobs(store: &dyn JobStore) {
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
            Transition::Done(job) => assert_eq!((job.status, job.lease_owner), (JobStatus::DeadLettered, None)),
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
            .finish(&backing_off.id, &lease.owner, &retry, now + 1)
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
                    (job.takeovers, job.resends, job.redrives),
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
                        job.lease_owner = lease_expires_at.map(|_| "someone".to_owned());
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
    pub async fn claim_and_dead_letter_conditions_follow_the_record_rules(store: &dyn JobStore) {
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

    pub async fn overdue_jobs_are_found_and_deferred_once(store: &dyn JobStore) {
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

    pub async fn owner_slots_are_exact_idempotent_and_bounded(store: &dyn JobStore) {
        use longrun_core::ports::SlotOutcome;
        let owner = format!("slots-{}", uuid::Uuid::new_v4());
        let (a, b, c) = (JobId::random(), JobId::random(), JobId::random());
        assert_eq!(store.active_slots(&owner).await.unwrap(), Vec::<JobId>::new());
        assert_eq!(
            store.reserve_slot(&owner, &a, 2).await.unwrap(),
            SlotOutcome::Reserved { newly: true }
        );
        assert_eq!(
            store.reserve_slot(&owner, &a, 2).await.unwrap(),
            SlotOutcome::Reserved { newly: false },
            "a job already holding a slot keeps it"
        );
        assert_eq!(
            store.reserve_slot(&owner, &b, 2).await.unwrap(),
            SlotOutcome::Reserved { newly: true }
        );
        match store.reserve_slot(&owner, &c, 2).await.unwrap() {
            SlotOutcome::Full { mut active } => {
                active.sort();
                let mut expected = vec![a.clone(), b.clone()];
                expected.sort();
                assert_eq!(active, expected);
            }
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(
            store.reserve_slot(&owner, &a, 2).await.unwrap(),
            SlotOutcome::Reserved { newly: false },
            "a replay passes a full set"
        );
        store.release_slot(&owner, &a).await.unwrap();
        store.release_slot(&owner, &a).await.unwrap();
        store.release_slot(&owner, &a).await.unwrap();
        assert_eq!(
            store.active_slots(&owner).await.unwrap(),
            vec![b.clone()],
            "release is idempotent"
        );
        assert_eq!(
            store.reserve_slot(&owner, &c, 2).await.unwrap(),
            SlotOutcome::Reserved { newly: true }
        );
        store.release_slot(&owner, &b).await.unwrap();
        store.release_slot(&owner, &c).await.unwrap();
        assert!(store.active_slots(&owner).await.unwrap().is_empty());
        assert!(
            store
                .list_by_owner(&owner, None, 10, None)
                .await
                .unwrap()
                .jobs
                .is_empty(),
            "the quota item is no job of the owner's"
        );
    }

    /// The due index is spread over shards; the reconciler's read finds an
    /// overdue job whichever shard its id puts it in.
    pub async fn overdue_jobs_are_found_in_every_shard(store: &dyn JobStore) {
        // Due far in the future (see `overdue_jobs_are_found_and_deferred_once`).
        let now = now_ms() + 10_000_000_000;
        let mut by_shard = std::collections::BTreeMap::new();
        while by_shard.len() < longrun_aws::DUE_SHARDS {
            let mut job = new_job(now - 200_000);
            job.due_at = Some(now - 100_000);
            by_shard.entry(longrun_aws::due_shard(&job.id)).or_insert(job);
        }
        for job in by_shard.values() {
            store.create(job, now_ms()).await.unwrap();
        }
        let found = store.overdue(now, 100_000).await.unwrap();
        for (shard, job) in &by_shard {
            assert!(found.contains(&job.id), "the overdue job in {shard} was not found");
        }
    }

    pub async fn owners_list_their_own_jobs_newest_first_in_pages(store: &dyn JobStore) {
        let now = now_ms();
        let owner = format!("lister-{}", uuid::Uuid::new_v4());
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut job = new_job(now + i);
            job.owner = owner.clone();
            store.create(&job, now).await.unwrap();
            ids.push(job.id.clone());
        }
        ids.reverse();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.list_by_owner(&owner, None, 2, cursor.as_deref()).await.unwrap();
            assert!(page.jobs.len() <= 2);
            seen.extend(page.jobs.iter().map(|j| j.id.clone()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids, "every job once, newest first");
        let lease = Lease::new(now + 60_000);
        claimed(store.claim(&ids[0], &lease, now).await.unwrap());
        let running = store
            .list_by_owner(&owner, Some(JobStatus::Running), 10, None)
            .await
            .unwrap();
        assert_eq!(
            running.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            [ids[0].clone()]
        );
        assert!(store
            .list_by_owner("nobody-at-all", None, 10, None)
            .await
            .unwrap()
            .jobs
            .is_empty());
        assert!(matches!(
            store.list_by_owner(&owner, None, 10, Some("not-a-cursor")).await,
            Err(StoreError::InvalidCursor)
        ));
    }

    pub async fn a_cursor_only_pages_for_the_owner_it_was_handed_to(store: &dyn JobStore) {
        let now = now_ms();
        let owner = format!("cursor-owner-{}", uuid::Uuid::new_v4());
        let other = format!("cursor-other-{}", uuid::Uuid::new_v4());
        for (i, who) in [&owner, &owner, &other, &other].into_iter().enumerate() {
            let mut job = new_job(now + i as i64);
            job.owner = who.clone();
            store.create(&job, now).await.unwrap();
        }
        let page = store.list_by_owner(&owner, None, 1, None).await.unwrap();
        let cursor = page.next_cursor.expect("a second page");
        assert!(matches!(
            store.list_by_owner(&other, None, 1, Some(&cursor)).await,
            Err(StoreError::InvalidCursor)
        ));
        let next = store.list_by_owner(&owner, None, 1, Some(&cursor)).await.unwrap();
        assert_eq!(next.jobs.len(), 1);
        assert_eq!(next.jobs[0].owner, owner);
    }

    /// A callback's delivery state is replaced only over the state the
    /// caller read: two deliveries of one end record one try.
    pub async fn a_callback_update_applies_only_over_the_state_read(store: &dyn JobStore) {
        let now = now_ms();
        let mut job = new_job(now);
        let read = Callback::new("https://hooks.example.com/longrun?x=1");
        job.callback = Some(read.clone());
        store.create(&job, now).await.unwrap();
        let tried = Callback {
            attempts: 1,
            last_status: Some(500),
            last_error: Some("answered 500".into()),
            last_attempt_at: Some(now + 1),
            next_attempt_at: Some(now + 5_001),
            ..read.clone()
        };
        assert!(store.update_callback(&job.id, &read, &tried).await.unwrap());
        let stored = store.get(&job.id).await.unwrap().unwrap();
        assert_eq!(stored.callback.as_ref(), Some(&tried));
        assert_eq!(stored.version, job.version + 1);

        let other = Callback {
            attempts: 1,
            delivered_at: Some(now + 2),
            ..read.clone()
        };
        assert!(
            !store.update_callback(&job.id, &read, &other).await.unwrap(),
            "a second delivery that read the same state is refused"
        );
        assert_eq!(
            store.get(&job.id).await.unwrap().unwrap().callback.as_ref(),
            Some(&tried),
            "the refused update changed nothing"
        );

        let delivered = Callback {
            attempts: 2,
            delivered_at: Some(now + 5_002),
            next_attempt_at: None,
            ..tried.clone()
        };
        assert!(store.update_callback(&job.id, &tried, &delivered).await.unwrap());
        assert_eq!(
            store.get(&job.id).await.unwrap().unwrap().callback,
            Some(delivered.clone())
        );

        let unknown = JobId::random();
        assert!(!store.update_callback(&unknown, &read, &delivered).await.unwrap());
        assert_eq!(store.get(&unknown).await.unwrap(), None, "nothing created");
        let without = new_job(now);
        store.create(&without, now).await.unwrap();
        assert!(!store.update_callback(&without.id, &read, &delivered).await.unwrap());
        assert_eq!(store.get(&without.id).await.unwrap().unwrap().callback, None);
    }

    /// An owner's webhook secrets: made once (conditional on none), rotated
    /// only over the ones read, kept whole, and on the owner's item beside
    /// its quota slots without touching them.
    pub async fn webhook_secrets_are_made_once_and_rotated_over_the_ones_read(store: &dyn JobStore) {
        let owner = format!("secrets-{}", uuid::Uuid::new_v4());
        let held = JobId::random();
        store.reserve_slot(&owner, &held, 5).await.unwrap();
        assert_eq!(store.webhook_secrets(&owner).await.unwrap(), None);

        let now = now_ms();
        let secret = || WebhookSecret::generate().to_whsec_string();
        let first = WebhookSecrets::rotated(None, secret(), now, 60_000);
        assert!(store.replace_webhook_secrets(&owner, None, &first).await.unwrap());
        assert_eq!(store.webhook_secrets(&owner).await.unwrap(), Some(first.clone()));
        let racing = WebhookSecrets::rotated(None, secret(), now + 1, 60_000);
        assert!(
            !store.replace_webhook_secrets(&owner, None, &racing).await.unwrap(),
            "a second first secret is refused"
        );
        assert_eq!(store.webhook_secrets(&owner).await.unwrap(), Some(first.clone()));

        let second = WebhookSecrets::rotated(Some(&first), secret(), now + 1_000, 60_000);
        assert!(store
            .replace_webhook_secrets(&owner, Some(first.created_at), &second)
            .await
            .unwrap());
        let stale = WebhookSecrets::rotated(Some(&first), secret(), now + 2_000, 60_000);
        assert!(
            !store
                .replace_webhook_secrets(&owner, Some(first.created_at), &stale)
                .await
                .unwrap(),
            "a rotation over the secrets before the last one is refused"
        );
        let stored = store.webhook_secrets(&owner).await.unwrap().expect("secrets stored");
        assert_eq!(stored, second);
        assert_eq!(
            (stored.previous.as_deref(), stored.previous_valid_until),
            (Some(first.current.as_str()), Some(now + 61_000)),
            "the replaced secret is kept for the overlap"
        );

        assert_eq!(
            store.active_slots(&owner).await.unwrap(),
            vec![held.clone()],
            "the quota's active set is untouched"
        );
        let another = JobId::random();
        store.reserve_slot(&owner, &another, 5).await.unwrap();
        store.release_slot(&owner, &held).await.unwrap();
        store.release_slot(&owner, &another).await.unwrap();
        assert!(store.active_slots(&owner).await.unwrap().is_empty());
        assert_eq!(
            store.webhook_secrets(&owner).await.unwrap(),
            Some(second),
            "the slots' writes leave the secrets alone"
        );
        assert!(
            store
                .list_by_owner(&owner, None, 10, None)
                .await
                .unwrap()
                .jobs
                .is_empty(),
            "the owner's item is no job"
        );
        assert_eq!(
            store
                .webhook_secrets(&format!("nobody-{}", uuid::Uuid::new_v4()))
                .await
                .unwrap(),
            None
        );
    }

    pub async fn stream_tickets_are_found_by_hash_until_they_expire(store: &dyn JobStore) {
        let now = now_ms();
        let owner = format!("tickets-{}", uuid::Uuid::new_v4());
        let mut job = new_job(now);
        job.owner = owner.clone();
        store.create(&job, now).await.unwrap();
        let ticket = StreamTicket {
            token_hash: StreamTicket::hash_token(&uuid::Uuid::new_v4().to_string()),
            owner: owner.clone(),
            job_id: job.id.clone(),
            expires_at: now + 30_000,
        };
        store.put_stream_ticket(&ticket).await.unwrap();
        assert_eq!(
            store.stream_ticket(&ticket.token_hash, now).await.unwrap(),
            Some(ticket.clone())
        );
        assert_eq!(
            store
                .stream_ticket(&ticket.token_hash, ticket.expires_at)
                .await
                .unwrap(),
            Some(ticket.clone()),
            "it opens until its expiry"
        );
        assert_eq!(
            store
                .stream_ticket(&ticket.token_hash, ticket.expires_at + 1)
                .await
                .unwrap(),
            None,
            "and not after"
        );
        let unknown = StreamTicket::hash_token(&uuid::Uuid::new_v4().to_string());
        assert_eq!(store.stream_ticket(&unknown, now).await.unwrap(), None);

        let listed = store.list_by_owner(&owner, None, 10, None).await.unwrap();
        assert_eq!(
            listed.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            [job.id.clone()],
            "only the owner's job, not its ticket"
        );
        // Read far in the future (see `overdue_jobs_are_found_and_deferred_once`).
        // The ticket names the owner's job: it must not show up as work or
        // change the job.
        let overdue = store.overdue(now + 10_000_000_000, 100_000).await.unwrap();
        assert_eq!(
            overdue.iter().filter(|id| **id == job.id).count(),
            1,
            "the job once, no ticket"
        );
        assert_eq!(store.get(&job.id).await.unwrap().unwrap().version, job.version);
    }

    /// A chain's first job, running under `lease`, whose one further step
    /// reads its `summary.csv`; and the step its success creates.
    async fn running_chain_step(store: &dyn JobStore, lease: &Lease, now: i64) -> (JobRecord, JobRecord) {
        start_chain(store, chain_first_job(now), lease, now).await
    }

    /// A job with one step to come, not yet created.
    fn chain_first_job(now: i64) -> JobRecord {
        let mut job = new_job(now);
        let step = ChainStep {
            job_type: "report".into(),
            input: json!({"source": {"from_previous": "summary.csv"}, "group_by": ["region"], "values": ["amount_sum"]}),
        };
        job.chain = Some(ChainLink::first(&job.id, vec![step]));
        job
    }

    /// Creates and claims the chain's first `job` under `lease`: the running
    /// step, and the next step its success would create.
    async fn start_chain(store: &dyn JobStore, job: JobRecord, lease: &Lease, now: i64) -> (JobRecord, JobRecord) {
        store.create(&job, now).await.unwrap();
        let running = claimed(store.claim(&job.id, lease, now).await.unwrap());
        let next =
            next_step(&running, &chain_results(&job.id), "fast", now + 500, 3600, 60_000).expect("a step is left");
        (running, next)
    }

    fn chain_results(id: &JobId) -> Vec<ResultObject> {
        vec![ResultObject {
            name: "summary.csv".into(),
            key: format!("results/{id}/run-1/summary.csv"),
            content_type: "text/csv".into(),
            bytes: 40,
        }]
    }

    fn succeeded_with(id: &JobId, next: &JobRecord) -> Finish {
        Finish::Succeeded {
            results: chain_results(id),
            next: Some(Box::new(next.clone())),
        }
    }

    pub async fn a_step_that_succeeds_creates_its_next_step_in_the_same_write(store: &dyn JobStore) {
        let now = now_ms();
        let lease = Lease::new(now + 60_000);
        let (running, next) = running_chain_step(store, &lease, now).await;
        assert_eq!(store.get(&next.id).await.unwrap(), None);
        let done = store
            .finish(
                &running.id,
                &lease.owner,
                &succeeded_with(&running.id, &next),
                now + 500,
            )
            .await
            .unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.results, chain_results(&running.id));
        assert_eq!(store.get(&running.id).await.unwrap(), Some(done.clone()));
        assert_eq!(longrun_core::chain::next_job_id(&done), Some(next.id.clone()));

        let created = store.get(&next.id).await.unwrap().expect("the next step exists");
        assert_eq!(created, next, "written as built");
        assert_eq!(created.status, JobStatus::Queued);
        assert_eq!(created.due_at, Some(now + 500 + 60_000), "in the due index");
        let link = created.chain.as_ref().unwrap();
        assert_eq!(
            (link.step, &link.chain_id, link.previous_job_id.as_ref()),
            (1, &running.id, Some(&running.id))
        );
        assert_eq!(link.readable_results, [chain_results(&running.id)[0].key.clone()]);
        let taken = claimed(
            store
                .claim(&next.id, &Lease::new(now + 60_000), now + 600)
                .await
                .unwrap(),
        );
        assert_eq!((taken.status, taken.attempts), (JobStatus::Running, 1), "due at once");
    }

    /// For a store with owner quotas on: a chain holds one slot of its
    /// owner's quota from step to step. A step that succeeds puts its next
    /// step in the active set in the write that creates it (even with the
    /// owner at its limit: no new admission) and gives back its own; the
    /// last step's end leaves nothing held.
    pub async fn a_chain_holds_one_quota_slot_from_step_to_step(store: &dyn JobStore) {
        let now = now_ms();
        let mut job = chain_first_job(now);
        job.owner = format!("chain-quota-{}", uuid::Uuid::new_v4());
        assert_eq!(
            store.reserve_slot(&job.owner, &job.id, 1).await.unwrap(),
            SlotOutcome::Reserved { newly: true }
        );
        let lease = Lease::new(now + 60_000);
        let (running, next) = start_chain(store, job.clone(), &lease, now).await;
        let done = succeeded_with(&running.id, &next);
        store.finish(&running.id, &lease.owner, &done, now + 500).await.unwrap();
        assert_eq!(
            store.active_slots(&job.owner).await.unwrap(),
            vec![next.id.clone()],
            "the slot passed to the next step"
        );

        let lease = Lease::new(now + 60_000);
        claimed(store.claim(&next.id, &lease, now + 600).await.unwrap());
        let last = Finish::Succeeded {
            results: chain_results(&next.id),
            next: None,
        };
        store.finish(&next.id, &lease.owner, &last, now + 700).await.unwrap();
        assert!(store.active_slots(&job.owner).await.unwrap().is_empty());
    }

    pub async fn a_step_asked_to_cancel_succeeds_without_its_next_step(store: &dyn JobStore) {
        let now = now_ms();
        let lease = Lease::new(now + 60_000);
        let (running, next) = running_chain_step(store, &lease, now).await;
        assert!(matches!(
            store.request_cancel(&running.id, now + 100).await.unwrap(),
            CancelOutcome::Requested(_)
        ));
        let done = store
            .finish(
                &running.id,
                &lease.owner,
                &succeeded_with(&running.id, &next),
                now + 500,
            )
            .await
            .unwrap();
        assert_eq!((done.status, done.cancel_requested), (JobStatus::Succeeded, true));
        assert_eq!(done.results, chain_results(&running.id), "its results are kept");
        assert_eq!(done.due_at, None);
        assert_eq!(store.get(&running.id).await.unwrap(), Some(done.clone()));
        assert_eq!(store.get(&next.id).await.unwrap(), None, "the cancel stops the chain");
        assert_eq!(longrun_core::chain::next_job_id(&done), None);
    }

    pub async fn a_step_that_lost_its_lease_creates_no_next_step(store: &dyn JobStore) {
        let now = now_ms();
        let first = Lease::new(now + 10_000);
        let (running, next) = running_chain_step(store, &first, now).await;
        let second = Lease::new(now + 80_000);
        let taken = claimed(store.claim(&running.id, &second, now + 20_000).await.unwrap());
        assert!(matches!(
            store
                .finish(
                    &running.id,
                    &first.owner,
                    &succeeded_with(&running.id, &next),
                    now + 21_000
                )
                .await,
            Err(StoreError::LeaseLost)
        ));
        assert_eq!(store.get(&next.id).await.unwrap(), None, "nothing created");
        assert_eq!(store.get(&running.id).await.unwrap(), Some(taken), "nothing ended");
    }

    pub async fn objects_stream_back_byte_for_byte(objects: &dyn ObjectStore) {
        let key = format!("results/contract-{}/blob.bin", uuid::Uuid::new_v4());
        let body: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
        objects
            .put(&key, Bytes::from(body.clone()), "application/octet-stream")
            .await
            .unwrap();
        let mut reader = objects.open(&key).await.unwrap();
        assert_eq!(reader.size, Some(body.len() as u64));
        let mut read = Vec::new();
        reader.body.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, body);
        let url = objects.presign_get(&key, Duration::from_secs(60)).await.unwrap();
        assert!(url.contains(&key), "{url}");
        assert!(matches!(
            objects.open("inputs/no-such-object").await,
            Err(ObjectError::NotFound(_))
        ));
    }

    pub async fn depth_counts_waiting_and_delayed_messages(queue: &dyn JobQueue) {
        assert_eq!(queue.depth("fast").await.unwrap(), 0);
        let message = |n: i64| JobMessage {
            job_id: JobId::random(),
            enqueued_at: n,
            redrives: 0,
        };
        queue.enqueue("fast", &message(1), 0).await.unwrap();
        queue.enqueue("fast", &message(2), 0).await.unwrap();
        queue.enqueue("fast", &message(3), 60).await.unwrap();
        assert_eq!(queue.depth("fast").await.unwrap(), 3, "two waiting and one delayed");
        assert!(matches!(
            queue.depth("no-such-queue").await,
            Err(QueueError::UnknownQueue(_))
        ));
    }

    pub async fn unknown_queues_are_refused(queue: &dyn JobQueue) {
        let message = JobMessage {
            job_id: JobId::random(),
            enqueued_at: now_ms(),
            redrives: 0,
        };
        assert!(matches!(
            queue.enqueue("no-such-queue", &message, 0).await,
            Err(QueueError::UnknownQueue(_))
        ));
        assert!(matches!(
            queue.change_visibility("no-such-queue", "r", 1).await,
            Err(QueueError::UnknownQueue(_))
        ));
        queue.enqueue("fast", &message, 0).await.unwrap();
    }
}

macro_rules! contract {
    (stores: $($store_case:ident),*; objects: $($object_case:ident),*; queues: $($queue_case:ident),*) => {
        mod memory {
            $(#[tokio::test]
            async fn $store_case() {
                super::cases::$store_case(&super::MemoryJobStore::with_retention(super::RETENTION_SECONDS)).await;
            })*
            $(#[tokio::test]
            async fn $object_case() {
                super::cases::$object_case(&super::MemoryObjectStore::new()).await;
            })*
            $(#[tokio::test]
            async fn $queue_case() {
                super::cases::$queue_case(&super::MemoryJobQueue::new(&["fast"])).await;
            })*
        }
        mod on_emulator {
            $(#[tokio::test]
            #[ignore = "needs the emulator: make test"]
            async fn $store_case() {
                let _one_at_a_time = super::aws_adapters::EMULATOR_STORE.lock().await;
                super::cases::$store_case(&*super::aws_adapters::job_store().await).await;
            })*
            $(#[tokio::test]
            #[ignore = "needs the emulator: make test"]
            async fn $object_case() {
                super::cases::$object_case(&*super::aws_adapters::object_store().await).await;
            })*
            $(#[tokio::test]
            #[ignore = "needs the emulator: make test"]
            async fn $queue_case() {
                super::cases::$queue_case(&*super::aws_adapters::job_queue().await).await;
            })*
        }
    };
}

/// The cases that need a store with owner quotas on, on both adapters.
mod with_owner_quotas {
    #[tokio::test]
    async fn a_chain_holds_one_quota_slot_from_step_to_step_in_memory() {
        let store = super::MemoryJobStore::with_retention(super::RETENTION_SECONDS).with_owner_quotas();
        super::cases::a_chain_holds_one_quota_slot_from_step_to_step(&store).await;
    }

    #[tokio::test]
    #[ignore = "needs the emulator: make test"]
    async fn a_chain_holds_one_quota_slot_from_step_to_step_on_emulator() {
        let _one_at_a_time = super::aws_adapters::EMULATOR_STORE.lock().await;
        let store = super::aws_adapters::job_store_with_quotas(true).await;
        super::cases::a_chain_holds_one_quota_slot_from_step_to_step(&*store).await;
    }
}

/// The AWS adapters, on the resources `make test` names.
mod aws_adapters {
    use super::*;

    /// The store cases run one at a time on the emulator: moto undoes a
    /// failed TransactWriteItems by restoring each table it touched as it
    /// was before the transaction, which drops any write another case made
    /// to that table meanwhile (DynamoDB and DynamoDB Local do not). The chain cases make such
    /// transactions on purpose (a cancel request, a lost lease).
    pub static EMULATOR_STORE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the contract tests through `make test`"))
    }

    pub async fn job_store() -> Arc<DynamoJobStore> {
        job_store_with_quotas(false).await
    }

    /// The job store, releasing (and handing on) quota slots when `quotas`.
    pub async fn job_store_with_quotas(quotas: bool) -> Arc<DynamoJobStore> {
        let clients = AwsClients::load().await;
        Arc::new(
            DynamoJobStore::new(clients.dynamodb, &env("LONGRUN_JOBS_TABLE"), RETENTION_SECONDS)
                .with_owner_quotas(quotas),
        )
    }

    pub async fn object_store() -> Arc<S3ObjectStore> {
        let clients = AwsClients::load().await;
        Arc::new(S3ObjectStore::new(clients.s3, &env("LONGRUN_JOBS_BUCKET")))
    }

    /// A queue of the test's own, so the running workers never see its messages.
    pub async fn job_queue() -> Arc<SqsJobQueue> {
        let clients = AwsClients::load().await;
        let name = format!("longrun-contract-{}", uuid::Uuid::new_v4());
        let url = clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("create a contract queue")
            .queue_url
            .expect("queue url");
        Arc::new(SqsJobQueue::new(
            clients.sqs,
            [("fast".to_owned(), url)].into_iter().collect(),
        ))
    }
}

contract! {
    stores:
        create_is_conditional_and_returns_the_existing_record,
        an_expired_record_is_replaced,
        a_claim_takes_the_lease_once,
        a_delayed_job_is_claimable_only_when_due,
        an_expired_lease_is_taken_over_and_fences_the_old_holder,
        progress_and_checkpoints_are_written_under_the_lease,
        success_ends_the_run_and_leaves_the_due_index,
        a_retry_requeues_until_run_at,
        a_failure_keeps_its_coded_error,
        a_continuation_requeues_without_using_an_attempt,
        heartbeats_extend_the_lease_under_fencing,
        cancel_ends_queued_jobs_and_flags_running_ones,
        dead_lettering_spares_live_and_ended_jobs,
        claim_and_dead_letter_conditions_follow_the_record_rules,
        overdue_jobs_are_found_and_deferred_once,
        overdue_jobs_are_found_in_every_shard,
        owner_slots_are_exact_idempotent_and_bounded,
        owners_list_their_own_jobs_newest_first_in_pages,
        a_cursor_only_pages_for_the_owner_it_was_handed_to,
        a_callback_update_applies_only_over_the_state_read,
        webhook_secrets_are_made_once_and_rotated_over_the_ones_read,
        stream_tickets_are_found_by_hash_until_they_expire,
        a_step_that_succeeds_creates_its_next_step_in_the_same_write,
        a_step_asked_to_cancel_succeeds_without_its_next_step,
        a_step_that_lost_its_lease_creates_no_next_step;
    objects: objects_stream_back_byte_for_byte;
    queues: unknown_queues_are_refused, depth_counts_waiting_and_delayed_messages
}
