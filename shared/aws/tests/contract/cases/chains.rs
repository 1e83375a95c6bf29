//! Contract cases of chains: the next step created with the end of the
//! step before, or not at all.

use crate::*;

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
    let next = next_step(&running, &chain_results(&job.id), "fast", now + 500, 3600, 60_000).expect("a step is left");
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

pub(crate) async fn a_step_that_succeeds_creates_its_next_step_in_the_same_write(store: &dyn JobStore) {
    let now = now_ms();
    let lease = Lease::new(now + 60_000);
    let (running, next) = running_chain_step(store, &lease, now).await;
    assert_eq!(store.get(&next.id).await.unwrap(), None);
    let done = store
        .finish(
            &running.id,
            &lease.token,
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
pub(crate) async fn a_chain_holds_one_quota_slot_from_step_to_step(store: &dyn JobStore) {
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
    store.finish(&running.id, &lease.token, &done, now + 500).await.unwrap();
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
    store.finish(&next.id, &lease.token, &last, now + 700).await.unwrap();
    assert!(store.active_slots(&job.owner).await.unwrap().is_empty());
}

pub(crate) async fn a_step_asked_to_cancel_succeeds_without_its_next_step(store: &dyn JobStore) {
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
            &lease.token,
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

pub(crate) async fn a_step_that_lost_its_lease_creates_no_next_step(store: &dyn JobStore) {
    let now = now_ms();
    let first = Lease::new(now + 10_000);
    let (running, next) = running_chain_step(store, &first, now).await;
    let second = Lease::new(now + 80_000);
    let taken = claimed(store.claim(&running.id, &second, now + 20_000).await.unwrap());
    assert!(matches!(
        store
            .finish(
                &running.id,
                &first.token,
                &succeeded_with(&running.id, &next),
                now + 21_000
            )
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert_eq!(store.get(&next.id).await.unwrap(), None, "nothing created");
    assert_eq!(store.get(&running.id).await.unwrap(), Some(taken), "nothing ended");
}

/// A chain started again under its first job's id (an `Idempotency-Key`
/// reused once the first chain's first record expired, while its next
/// step's record still lives) creates steps of its own.
pub(crate) async fn a_chain_started_again_under_the_same_id_creates_its_own_steps(store: &dyn JobStore) {
    let now = now_ms();
    let first = chain_first_job(now);
    let lease = Lease::new(now + 60_000);
    let (running, next) = start_chain(store, first.clone(), &lease, now).await;
    store
        .finish(
            &running.id,
            &lease.token,
            &succeeded_with(&running.id, &next),
            now + 500,
        )
        .await
        .unwrap();
    assert!(store.get(&next.id).await.unwrap().is_some());

    // Past the first record's retention (its next step, made later, may
    // still live): the same id submitted again is a new job.
    let later = now + (RETENTION_SECONDS + 60) * 1000;
    let mut again = chain_first_job(later);
    again.id = first.id.clone();
    again.chain = Some(ChainLink::first(&again.id, first.chain.clone().unwrap().then));
    assert_eq!(store.create(&again, later).await.unwrap(), CreateOutcome::Created);
    let lease = Lease::new(later + 60_000);
    let running = claimed(store.claim(&again.id, &lease, later).await.unwrap());
    let own_next = next_step(&running, &chain_results(&again.id), "fast", later + 500, 3600, 60_000).unwrap();
    assert_ne!(own_next.id, next.id, "its own step, not the first chain's");
    let done = store
        .finish(
            &running.id,
            &lease.token,
            &succeeded_with(&running.id, &own_next),
            later + 500,
        )
        .await
        .expect("the second chain's step ends and creates its next step");
    assert_eq!(longrun_core::chain::next_job_id(&done), Some(own_next.id.clone()));
    assert_eq!(store.get(&own_next.id).await.unwrap(), Some(own_next));
    assert_eq!(
        store.get(&next.id).await.unwrap(),
        Some(next),
        "the first chain's step untouched"
    );
}
