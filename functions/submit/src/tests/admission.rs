//! Admission: one record and one message per job, replays by key, every bad
//! input a problem, failures after the put, callers without identity.

use super::*;

#[tokio::test]
async fn accepts_a_job_writes_one_record_and_sends_one_message() {
    let f = fixture();
    let response = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(response.status_code, 202);
    let view = body_json(&response);
    let id = view["id"].as_str().unwrap();
    assert_eq!(response.headers["location"], format!("/jobs/{id}").as_str());
    assert_eq!(response.headers["retry-after"], "1");
    assert_eq!(view["status"], "QUEUED");
    assert_eq!(view["type"], "sleep");
    assert_eq!(view["max_attempts"], 3);

    let job = f.store.get(&JobId::parse(id).unwrap()).await.unwrap().unwrap();
    assert_eq!(job.owner, owner("alice"));
    assert_eq!(job.queue, "fast");
    assert!(job.due_at.is_some());
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].message.job_id.as_str(), id);
    assert_eq!(sent[0].queue, "fast");
}

#[tokio::test]
async fn routes_job_types_to_their_queue_and_honours_delay() {
    let f = fixture();
    let key = format!("{}u1/a.png", input_prefix(&owner("alice")));
    let body =
        json!({"type": "thumbnail", "input": {"source": {"key": key}, "widths": [8]}, "delay_seconds": 30}).to_string();
    let response = handle(&f.deps, post(&body, &[], Some("alice"))).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let sent = f.queue.sent();
    assert_eq!((sent[0].queue.as_str(), sent[0].delay_seconds), ("slow", 30));
    assert!(body_json(&response)["run_at"].is_string());
}

#[tokio::test]
async fn a_replay_of_a_job_that_never_started_sends_it_again_once() {
    let f = fixture();
    let key = [("Idempotency-Key", "lost-message")];
    f.queue.fail_next_sends(1);
    let first = handle(&f.deps, post(SLEEP, &key, Some("alice"))).await;
    assert_eq!(first.status_code, 202, "accepted: the record is durable");
    assert!(f.queue.sent().is_empty(), "its message was lost");
    let id = longrun_core::JobId::parse(body_json(&first)["id"].as_str().unwrap()).unwrap();

    // The client retries a few seconds later: the job has not started.
    let mut waiting = f.store.get(&id).await.unwrap().unwrap();
    waiting.created_at -= 5_000;
    f.store.insert(waiting);
    for _ in 0..3 {
        let replay = handle(&f.deps, post(SLEEP, &key, Some("alice"))).await;
        assert_eq!(replay.status_code, 200);
    }
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1, "sent again once, not once per replay");
    assert_eq!(sent[0].message.job_id, id);
    assert_eq!(f.store.get(&id).await.unwrap().unwrap().resends, 1);
}

#[tokio::test]
async fn replays_with_the_same_key_and_body_return_the_same_job() {
    let f = fixture();
    let key = [("Idempotency-Key", "order-42")];
    let first = handle(&f.deps, post(SLEEP, &key, Some("alice"))).await;
    assert_eq!(first.status_code, 202);
    let reordered = r#"{"input": {"seconds": 1}, "type": "sleep"}"#;
    let second = handle(&f.deps, post(reordered, &key, Some("alice"))).await;
    assert_eq!(second.status_code, 200);
    assert_eq!(body_json(&first)["id"], body_json(&second)["id"]);
    assert_eq!(f.store.len(), 1, "no second record");
    assert_eq!(f.queue.sent().len(), 1, "no second message: the first is on its way");

    // Keys are per caller: bob's order-42 is another job.
    let bob = handle(&f.deps, post(SLEEP, &key, Some("bob"))).await;
    assert_eq!(bob.status_code, 202);
    assert_ne!(body_json(&bob)["id"], body_json(&first)["id"]);
}

#[tokio::test]
async fn reusing_a_key_with_another_body_is_422() {
    let f = fixture();
    let key = [("Idempotency-Key", "k")];
    assert_eq!(handle(&f.deps, post(SLEEP, &key, Some("alice"))).await.status_code, 202);
    let other = r#"{"type": "sleep", "input": {"seconds": 2}}"#;
    let response = handle(&f.deps, post(other, &key, Some("alice"))).await;
    assert_eq!(response.status_code, 422);
    assert_eq!(response.headers["content-type"], "application/problem+json");
    assert_eq!(
        body_json(&response)["type"],
        "urn:longrun:problem:idempotency-key-reused"
    );
    assert_eq!(f.queue.sent().len(), 1);
}

#[tokio::test]
async fn a_key_whose_id_holds_another_callers_job_is_422_and_hands_back_nothing() {
    let f = fixture();
    // Alice's record under the id bob's key derives to, with the very body bob sends.
    let first = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "k")], Some("bob"))).await;
    let id = JobId::parse(body_json(&first)["id"].as_str().unwrap()).unwrap();
    assert_eq!(id, JobId::for_idempotency_key(&owner("bob"), "k"));
    let mut alices = f.store.get(&id).await.unwrap().unwrap();
    alices.owner = owner("alice");
    f.store.insert(alices.clone());
    let sent_before = f.queue.sent().len();

    let response = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "k")], Some("bob"))).await;
    assert_eq!(response.status_code, 422);
    assert_eq!(response.headers["content-type"], "application/problem+json");
    let problem = body_json(&response);
    assert_eq!(problem["type"], "urn:longrun:problem:idempotency-key-reused");
    assert!(
        !problem.to_string().contains("alice"),
        "nothing of alice's job: {problem}"
    );
    assert_eq!(f.store.get(&id).await.unwrap(), Some(alices), "her record untouched");
    assert_eq!(f.queue.sent().len(), sent_before, "nothing sent");
}

#[tokio::test]
async fn every_bad_input_class_gets_a_problem_and_writes_nothing() {
    let f = fixture();
    let big = format!(
        r#"{{"type": "sleep", "input": {{"seconds": 1, "pad": "{}"}}}}"#,
        "x".repeat(4096)
    );
    let long_key = "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
    let cases: Vec<BadRequest> = vec![
        (
            "form content type",
            SLEEP.into(),
            vec![("content-type", "application/x-www-form-urlencoded")],
            415,
        ),
        ("malformed JSON", r#"{"type": "sleep", "input": "#.into(), vec![], 400),
        ("empty body", "  ".into(), vec![], 400),
        ("not an object", "[1, 2]".into(), vec![], 422),
        ("missing type", r#"{"input": {}}"#.into(), vec![], 422),
        ("missing input", r#"{"type": "sleep"}"#.into(), vec![], 422),
        (
            "unknown field",
            r#"{"type": "sleep", "input": {"seconds": 1}, "priority": 9}"#.into(),
            vec![],
            422,
        ),
        (
            "unknown type",
            r#"{"type": "mine-bitcoin", "input": {}}"#.into(),
            vec![],
            422,
        ),
        (
            "invalid input",
            r#"{"type": "sleep", "input": {"seconds": -5}}"#.into(),
            vec![],
            422,
        ),
        (
            "wrong input shape",
            r#"{"type": "report", "input": "sales.csv"}"#.into(),
            vec![],
            422,
        ),
        (
            "unknown queue",
            r#"{"type": "sleep", "input": {"seconds": 1}, "queue": "vip"}"#.into(),
            vec![],
            422,
        ),
        (
            "delay too long",
            r#"{"type": "sleep", "input": {"seconds": 1}, "delay_seconds": 31536001}"#.into(),
            vec![],
            422,
        ),
        (
            "run_at and delay_seconds",
            r#"{"type": "sleep", "input": {"seconds": 1}, "delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}"#
                .into(),
            vec![],
            422,
        ),
        (
            "run_at not a time",
            r#"{"type": "sleep", "input": {"seconds": 1}, "run_at": "next tuesday"}"#.into(),
            vec![],
            422,
        ),
        (
            "run_at past the longest delay",
            r#"{"type": "sleep", "input": {"seconds": 1}, "run_at": "2999-01-01T00:00:00Z"}"#.into(),
            vec![],
            422,
        ),
        (
            "run_at long past",
            r#"{"type": "sleep", "input": {"seconds": 1}, "run_at": "2020-01-01T00:00:00Z"}"#.into(),
            vec![],
            422,
        ),
        (
            "negative delay",
            r#"{"type": "sleep", "input": {"seconds": 1}, "delay_seconds": -1}"#.into(),
            vec![],
            422,
        ),
        (
            "zero attempts",
            r#"{"type": "sleep", "input": {"seconds": 1}, "max_attempts": 0}"#.into(),
            vec![],
            422,
        ),
        (
            "too many attempts",
            r#"{"type": "sleep", "input": {"seconds": 1}, "max_attempts": 6}"#.into(),
            vec![],
            422,
        ),
        ("oversize body", big, vec![], 413),
        (
            "empty idempotency key",
            SLEEP.into(),
            vec![("Idempotency-Key", "")],
            400,
        ),
        (
            "overlong idempotency key",
            SLEEP.into(),
            vec![("Idempotency-Key", long_key.as_str())],
            400,
        ),
        (
            "idempotency key with spaces",
            SLEEP.into(),
            vec![("Idempotency-Key", "a b")],
            400,
        ),
    ];
    for (name, body, headers, status) in cases {
        let response = handle(&f.deps, post(&body, &headers, Some("alice"))).await;
        assert_eq!(response.status_code, status, "{name}: {:?}", response.body);
        assert_eq!(response.headers["content-type"], "application/problem+json", "{name}");
        let problem = body_json(&response);
        assert_eq!(problem["status"], status, "{name}");
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{name}");
    }
    assert!(f.store.is_empty(), "no bad request may write a record");
    assert!(f.queue.sent().is_empty(), "no bad request may send a message");
}

#[tokio::test]
async fn invalid_input_names_each_bad_field() {
    let f = fixture();
    let body = r#"{"type": "report", "input": {"source": {"key": "/etc/passwd"}, "group_by": [], "values": ["v"]}}"#;
    let problem = body_json(&handle(&f.deps, post(body, &[], Some("alice"))).await);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.source.key", "input.group_by"]);
}

#[tokio::test]
async fn a_failed_send_after_the_put_still_accepts_and_leaves_the_job_due() {
    let f = fixture();
    f.queue.fail_next_sends(1);
    let response = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(response.status_code, 202);
    let id = JobId::parse(body_json(&response)["id"].as_str().unwrap()).unwrap();
    let job = f.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    let grace = f.deps.config.enqueue_grace_ms();
    assert_eq!(
        job.due_at,
        Some(job.created_at + grace),
        "the reconciler finds it by due_at"
    );
    assert!(f.queue.sent().is_empty());
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after_and_nothing_sent() {
    let f = fixture();
    f.store.set_unavailable(true);
    let response = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(response.status_code, 503);
    assert_eq!(response.headers["retry-after"], "2");
    assert!(f.queue.sent().is_empty());
}

#[tokio::test]
async fn a_caller_without_identity_is_401_before_anything_else_and_nothing_is_written() {
    let f = fixture();
    for (body, headers) in [(SLEEP, vec![]), ("{not json", vec![("content-type", "text/plain")])] {
        let response = handle(&f.deps, post(body, &headers, None)).await;
        assert_eq!(response.status_code, 401, "{body}");
        assert_eq!(response.headers["www-authenticate"], "Bearer");
        assert_eq!(body_json(&response)["type"], "urn:longrun:problem:unauthorized");
    }
    assert!(f.store.is_empty());
    assert!(f.queue.sent().is_empty());
}

#[tokio::test]
async fn anonymous_callers_are_one_shared_owner_only_when_allowed() {
    let mut f = fixture();
    f.deps.config = Arc::new(longrun_core::fixtures::config(&[("ALLOW_ANONYMOUS", "true")]));
    let response = handle(&f.deps, post(SLEEP, &[], None)).await;
    assert_eq!(response.status_code, 202);
    let id = longrun_core::JobId::parse(body_json(&response)["id"].as_str().unwrap()).unwrap();
    let stored = f.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.owner, longrun_lambda::identity::ANONYMOUS_OWNER);
}

#[tokio::test]
async fn a_job_far_ahead_gets_no_message_until_its_start_is_near_and_a_near_one_is_delayed_to_it() {
    let f = fixture();
    let now = now_ms();
    let far = longrun_core::time::rfc3339(now + 3 * 86_400_000);
    let body = json!({"type": "sleep", "input": {"seconds": 1}, "run_at": far}).to_string();
    let response = handle(&f.deps, post(&body, &[("Idempotency-Key", "far")], Some("alice"))).await;
    assert_eq!(response.status_code, 202, "{:?}", response.body);
    let view = body_json(&response);
    assert_eq!(view["run_at"], far.as_str());
    assert!(
        f.queue.sent().is_empty(),
        "SQS delays 15 minutes at most: the reconciler sends it"
    );
    let job = f
        .store
        .get(&JobId::parse(view["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let run_at = job.run_at.unwrap();
    assert_eq!(job.due_at, Some(run_at - 900_000), "due when the look-ahead reaches it");
    // A replay later (the delay it comes to has changed) is the same job.
    let replay = handle(&f.deps, post(&body, &[("Idempotency-Key", "far")], Some("alice"))).await;
    assert_eq!(
        (replay.status_code, body_json(&replay)["id"].clone()),
        (200, view["id"].clone())
    );

    let near = longrun_core::time::rfc3339(now + 60_000);
    let body = json!({"type": "sleep", "input": {"seconds": 1}, "run_at": near}).to_string();
    assert_eq!(handle(&f.deps, post(&body, &[], Some("alice"))).await.status_code, 202);
    let sent = f.queue.sent();
    assert_eq!(sent.len(), 1);
    assert!(
        (59..=60).contains(&sent[0].delay_seconds),
        "delayed to its start: {sent:?}"
    );
}
