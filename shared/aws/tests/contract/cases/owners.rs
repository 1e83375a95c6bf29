//! Contract cases of quota slots, owners' lists, callbacks, webhook
//! secrets and stream tickets.

use crate::*;

pub(crate) async fn owner_slots_are_exact_idempotent_and_bounded(store: &dyn JobStore) {
    use longrun_core::ports::SlotOutcome;
    let owner = format!("slots-{}", uuid::Uuid::new_v4());
    // `b` is derived (as a chain step's or an Idempotency-Key's id): no time in it.
    let (a, b, c) = (
        JobId::random(),
        JobId::next_in_chain(&JobId::random(), 0),
        JobId::random(),
    );
    let before = now_ms();
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
        SlotOutcome::Full {
            mut active,
            reserved_at,
        } => {
            active.sort();
            let mut expected = vec![a.clone(), b.clone()];
            expected.sort();
            assert_eq!(active, expected);
            assert_eq!(
                reserved_at.keys().collect::<Vec<_>>(),
                vec![&b],
                "the time is kept for the derived id, which carries none"
            );
            assert!(
                (before - 1_000..=now_ms() + 1_000).contains(&reserved_at[&b]),
                "reserved at the store's now: {reserved_at:?}"
            );
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
    match store.reserve_slot(&owner, &a, 2).await.unwrap() {
        SlotOutcome::Full { reserved_at, .. } => {
            assert_eq!(reserved_at.keys().collect::<Vec<_>>(), vec![&b], "{reserved_at:?}");
        }
        other => panic!("expected Full, got {other:?}"),
    }
    store.release_slot(&owner, &b).await.unwrap();
    let d = JobId::next_in_chain(&JobId::random(), 0);
    store.reserve_slot(&owner, &d, 2).await.unwrap();
    match store.reserve_slot(&owner, &a, 2).await.unwrap() {
        SlotOutcome::Full { reserved_at, .. } => assert_eq!(
            reserved_at.keys().collect::<Vec<_>>(),
            vec![&d],
            "a released reservation's time went with it"
        ),
        other => panic!("expected Full, got {other:?}"),
    }
    store.release_slot(&owner, &c).await.unwrap();
    store.release_slot(&owner, &d).await.unwrap();
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
pub(crate) async fn overdue_jobs_are_found_in_every_shard(store: &dyn JobStore) {
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

pub(crate) async fn owners_list_their_own_jobs_newest_first_in_pages(store: &dyn JobStore) {
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

/// Many jobs (over every shard of the owner index), several made in the
/// same millisecond: small pages give each job once, in one order.
pub(crate) async fn pages_over_many_jobs_and_equal_times_give_each_job_once_in_order(store: &dyn JobStore) {
    let now = now_ms();
    let owner = format!("pager-{}", uuid::Uuid::new_v4());
    let mut jobs = Vec::new();
    for i in 0..45 {
        // Three jobs to a millisecond; the first fifteen all in one shard
        // of the owner index (the same last hex digit).
        let mut job = new_job(now + i / 3);
        while i < 15 && !job.id.as_str().ends_with('0') {
            job.id = JobId::random();
        }
        job.owner = owner.clone();
        store.create(&job, now).await.unwrap();
        jobs.push(job);
    }
    jobs.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let wanted: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
    for page_size in [1, 7, 45, 100] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..=wanted.len() {
            let page = store
                .list_by_owner(&owner, None, page_size, cursor.as_deref())
                .await
                .unwrap();
            assert!(page.jobs.len() <= page_size);
            seen.extend(page.jobs.iter().map(|j| j.id.clone()));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, wanted, "pages of {page_size}: every job once, newest first");
    }
}

pub(crate) async fn a_cursor_only_pages_for_the_owner_it_was_handed_to(store: &dyn JobStore) {
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
pub(crate) async fn a_callback_update_applies_only_over_the_state_read(store: &dyn JobStore) {
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
pub(crate) async fn webhook_secrets_are_made_once_and_rotated_over_the_ones_read(store: &dyn JobStore) {
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

pub(crate) async fn stream_tickets_are_found_by_hash_until_they_expire(store: &dyn JobStore) {
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

pub(crate) async fn counts_in_a_window_are_exact_per_owner_counter_and_window(store: &dyn JobStore) {
    use longrun_core::ports::RateWindow;
    let owner = format!("rates-{}", uuid::Uuid::new_v4());
    let window = RateWindow::at(now_ms(), 60_000, 3);
    let mut granted = Vec::new();
    for _ in 0..5 {
        granted.push(store.count_in_window(&owner, "stream-tickets", &window).await.unwrap());
    }
    assert_eq!(granted, [true, true, true, false, false], "the limit, then nothing");
    assert!(
        store.count_in_window(&owner, "upload-urls", &window).await.unwrap(),
        "another counter counts apart"
    );
    assert!(
        store
            .count_in_window(&format!("{owner}-b"), "stream-tickets", &window)
            .await
            .unwrap(),
        "another owner counts apart"
    );
    let next = RateWindow {
        start_ms: window.start_ms + window.length_ms,
        ..window
    };
    assert!(
        store.count_in_window(&owner, "stream-tickets", &next).await.unwrap(),
        "the next window starts again"
    );
    // Concurrent callers cannot pass the limit together.
    let fresh = format!("{owner}-c");
    let count = || store.count_in_window(&fresh, "stream-tickets", &window);
    let answers = tokio::join!(count(), count(), count(), count(), count(), count());
    let answers = [answers.0, answers.1, answers.2, answers.3, answers.4, answers.5];
    assert_eq!(
        answers.iter().filter(|a| *a.as_ref().unwrap()).count(),
        3,
        "{answers:?}"
    );
}

/// Run with owner quotas on.
pub(crate) async fn a_redriven_job_takes_a_quota_slot_again_and_its_end_gives_it_back(store: &dyn JobStore) {
    let now = now_ms();
    let mut job = new_job(now);
    job.owner = format!("redrive-{}", uuid::Uuid::new_v4());
    store.create(&job, now).await.unwrap();
    store.reserve_slot(&job.owner, &job.id, 1).await.unwrap();
    let error = JobError::permanent("dead_lettered", "its message reached the dead-letter queue");
    let late = now + 10 * 60_000;
    assert!(matches!(
        store.dead_letter(&job.id, &error, 0, late).await.unwrap(),
        Transition::Done(_)
    ));
    assert!(store.active_slots(&job.owner).await.unwrap().is_empty());
    // Another job took the owner's one slot meanwhile: the redrive still
    // takes one (an operator's redrive is no new admission).
    let other = JobId::random();
    store.reserve_slot(&job.owner, &other, 1).await.unwrap();
    assert!(matches!(
        store
            .requeue_dead_lettered(&job.id, late + 1, late + 60_000)
            .await
            .unwrap(),
        Transition::Done(_)
    ));
    let mut active = store.active_slots(&job.owner).await.unwrap();
    active.sort();
    let mut expected = vec![job.id.clone(), other.clone()];
    expected.sort();
    assert_eq!(active, expected, "the redriven job holds a slot again");
    let lease = Lease::new(late + 120_000);
    claimed(store.claim(&job.id, &lease, late + 2).await.unwrap());
    let done = Finish::Succeeded {
        results: Vec::new(),
        next: None,
    };
    store.finish(&job.id, &lease.token, &done, late + 3).await.unwrap();
    assert_eq!(store.active_slots(&job.owner).await.unwrap(), vec![other]);
}
