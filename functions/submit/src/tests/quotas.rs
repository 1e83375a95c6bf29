//! Quotas, priorities and backpressure at admission.

use super::*;

#[tokio::test]
async fn an_owner_at_its_quota_gets_429_until_a_job_ends_and_others_are_unaffected() {
    let f = fixture_with(&[("MAX_ACTIVE_JOBS_PER_OWNER", "2")]);
    let mut ids = Vec::new();
    for key in ["q1", "q2"] {
        let accepted = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", key)], Some("alice"))).await;
        assert_eq!(accepted.status_code, 202);
        ids.push(longrun_core::JobId::parse(body_json(&accepted)["id"].as_str().unwrap()).unwrap());
    }
    let refused = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(refused.status_code, 429, "{:?}", refused.body);
    assert_eq!(refused.headers["retry-after"], QUOTA_RETRY_AFTER_SECONDS.to_string());
    assert_eq!(body_json(&refused)["type"], "urn:longrun:problem:quota-exceeded");
    assert_eq!(f.store.len(), 2, "nothing written for the refused job");
    // A replay of accepted work still answers; another owner is unaffected.
    let replay = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "q1")], Some("alice"))).await;
    assert_eq!(replay.status_code, 200);
    let bob = handle(&f.deps, post(SLEEP, &[], Some("bob"))).await;
    assert_eq!(bob.status_code, 202);

    // One of alice's jobs ends (cancelled): its slot comes back.
    f.store
        .request_cancel(&ids[0], longrun_core::time::now_ms())
        .await
        .unwrap();
    assert_eq!(
        f.store.active_slots(&owner("alice")).await.unwrap(),
        vec![ids[1].clone()]
    );
    let next = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(next.status_code, 202);
    // The replay of the ended job answers without taking a slot.
    let ended_replay = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "q1")], Some("alice"))).await;
    assert_eq!(ended_replay.status_code, 200);
    assert_eq!(f.store.active_slots(&owner("alice")).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_slot_leaked_by_a_crash_is_freed_when_the_quota_is_found_full() {
    let f = fixture_with(&[("MAX_ACTIVE_JOBS_PER_OWNER", "1")]);
    let first = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    let id = longrun_core::JobId::parse(body_json(&first)["id"].as_str().unwrap()).unwrap();
    // The job ended, but its release was lost (a crash between the two writes).
    let mut ended = f.store.get(&id).await.unwrap().unwrap();
    ended.status = JobStatus::Succeeded;
    f.store.insert(ended);
    assert_eq!(f.store.active_slots(&owner("alice")).await.unwrap(), vec![id.clone()]);
    let next = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(next.status_code, 202, "the leaked slot was repaired: {:?}", next.body);
    assert_eq!(f.store.active_slots(&owner("alice")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_derived_ids_reservation_without_a_record_is_freed_once_over_a_minute_old() {
    let f = fixture_with(&[("MAX_ACTIVE_JOBS_PER_OWNER", "1")]);
    // A chain step's (or an Idempotency-Key's) id holds the slot, but its
    // record is gone: its release was lost, and then its TTL removed it.
    let derived = longrun_core::JobId::next_in_chain(&longrun_core::JobId::random(), 0);
    f.store.reserve_slot(&owner("alice"), &derived, 1).await.unwrap();
    let refused = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(
        refused.status_code, 429,
        "a fresh reservation may be a submit in flight"
    );
    f.store
        .backdate_reservation(&owner("alice"), &derived, longrun_core::time::now_ms() - 2 * 60_000);
    // The next repair may run once the interval has passed (a new process here).
    let f = Fixture {
        deps: SubmitDeps {
            repairs: Arc::default(),
            ..f.deps.clone()
        },
        ..f
    };
    let accepted = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(
        accepted.status_code, 202,
        "the leaked slot was aged out: {:?}",
        accepted.body
    );
    assert!(!f.store.active_slots(&owner("alice")).await.unwrap().contains(&derived));
}

#[tokio::test]
async fn refused_submits_at_a_full_quota_read_its_jobs_once_per_interval() {
    let f = fixture_with(&[("MAX_ACTIVE_JOBS_PER_OWNER", "3")]);
    for _ in 0..3 {
        assert_eq!(handle(&f.deps, post(SLEEP, &[], Some("alice"))).await.status_code, 202);
    }
    let before = f.store.gets();
    for _ in 0..10 {
        assert_eq!(handle(&f.deps, post(SLEEP, &[], Some("alice"))).await.status_code, 429);
    }
    assert_eq!(
        f.store.gets() - before,
        3,
        "one repair (a read per active job), not one per refused submit"
    );
    // Another owner's full quota is repaired on its own.
    for _ in 0..3 {
        assert_eq!(handle(&f.deps, post(SLEEP, &[], Some("bob"))).await.status_code, 202);
    }
    let before = f.store.gets();
    assert_eq!(handle(&f.deps, post(SLEEP, &[], Some("bob"))).await.status_code, 429);
    assert_eq!(f.store.gets() - before, 3);
}

#[tokio::test]
async fn the_priority_picks_the_queue_and_callers_cannot_name_one() {
    let f = fixture();
    let thumbnail = |priority: &str| {
        json!({"type": "thumbnail", "priority": priority,
               "input": {"source": {"key": format!("{}a.png", input_prefix(&owner("alice")))}, "widths": [8]}})
        .to_string()
    };
    for (priority, queue) in [("high", "urgent"), ("normal", "slow"), ("low", "bulk")] {
        let answer = handle(&f.deps, post(&thumbnail(priority), &[], Some("alice"))).await;
        assert_eq!(answer.status_code, 202, "{:?}", answer.body);
        let view = body_json(&answer);
        assert_eq!(
            (view["priority"].as_str(), view["queue"].as_str()),
            (Some(priority), Some(queue))
        );
        assert_eq!(f.queue.sent().last().unwrap().queue, queue);
    }
    let plain = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(body_json(&plain)["priority"], "normal", "normal when absent");
    assert_eq!(body_json(&plain)["queue"], "fast");

    for bad in [
        r#"{"type": "sleep", "input": {"seconds": 1}, "priority": "urgent"}"#,
        r#"{"type": "sleep", "input": {"seconds": 1}, "queue": "slow"}"#,
    ] {
        let refused = handle(&f.deps, post(bad, &[], Some("alice"))).await;
        assert_eq!(refused.status_code, 422, "{bad}: {:?}", refused.body);
    }
}

#[tokio::test]
async fn a_queue_at_its_depth_limit_refuses_new_work_with_503_and_retry_after_but_not_replays() {
    let f = fixture_with(&[("QUEUE_MAX_DEPTHS", "fast=2"), ("QUEUE_DEPTH_SAMPLE_MS", "0")]);
    let first = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "k1")], Some("alice"))).await;
    assert_eq!(first.status_code, 202);
    let second = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(second.status_code, 202);

    let refused = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(refused.status_code, 503, "{:?}", refused.body);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    let problem = body_json(&refused);
    assert_eq!(problem["status"], 503);
    assert!(problem["detail"].as_str().unwrap().contains("limit is 2"), "{problem}");
    assert_eq!(f.store.len(), 2, "nothing written for the refused job");

    // Accepted work is never refused: the replay of the first still answers.
    let replay = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "k1")], Some("alice"))).await;
    assert_eq!(replay.status_code, 200);
    assert_eq!(body_json(&replay)["id"], body_json(&first)["id"]);
    // A new key while busy is new work: refused.
    let new_key = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "k2")], Some("alice"))).await;
    assert_eq!(new_key.status_code, 503);

    // The slow queue has no limit here: other work goes on.
    let thumbnail = json!({"type": "thumbnail", "input": {"source": {"key": format!("{}a.png", input_prefix(&owner("alice")))}, "widths": [8]}});
    let slow = handle(&f.deps, post(&thumbnail.to_string(), &[], Some("alice"))).await;
    assert_eq!(slow.status_code, 202, "{:?}", slow.body);
}
