//! Submit's unit tests, over the in-memory adapters.

use super::*;
use longrun_core::access::input_prefix;
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::{JobLifecycle, OwnerData, QuotaSlots};
use longrun_core::JobStatus;
use longrun_lambda::apigw::HttpEvent;

struct Fixture {
    deps: SubmitDeps,
    store: Arc<MemoryJobStore>,
    queue: Arc<MemoryJobQueue>,
}

fn fixture() -> Fixture {
    fixture_with(&[])
}

fn fixture_with(overrides: &[(&str, &str)]) -> Fixture {
    let mut settings = vec![("MAX_REQUEST_BYTES", "2048")];
    settings.extend_from_slice(overrides);
    let config = Arc::new(longrun_core::testing::config(&settings));
    let store = Arc::new(MemoryJobStore::new().with_owner_quotas());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow", "urgent", "bulk"]));
    let deps = SubmitDeps {
        registry: Arc::new(longrun_jobs::standard(&config)),
        store: store.clone(),
        depths: Arc::new(longrun_core::backpressure::DepthGauge::new(
            queue.clone(),
            config.queue_depth_sample,
        )),
        queue: queue.clone(),
        objects: Arc::new(MemoryObjectStore::new()),
        config,
    };
    Fixture { deps, store, queue }
}

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
    assert_eq!(f.store.active_slots("alice").await.unwrap(), vec![ids[1].clone()]);
    let next = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(next.status_code, 202);
    // The replay of the ended job answers without taking a slot.
    let ended_replay = handle(&f.deps, post(SLEEP, &[("Idempotency-Key", "q1")], Some("alice"))).await;
    assert_eq!(ended_replay.status_code, 200);
    assert_eq!(f.store.active_slots("alice").await.unwrap().len(), 2);
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
    assert_eq!(f.store.active_slots("alice").await.unwrap(), vec![id.clone()]);
    let next = handle(&f.deps, post(SLEEP, &[], Some("alice"))).await;
    assert_eq!(next.status_code, 202, "the leaked slot was repaired: {:?}", next.body);
    assert_eq!(f.store.active_slots("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_priority_picks_the_queue_and_callers_cannot_name_one() {
    let f = fixture();
    let thumbnail = |priority: &str| {
        json!({"type": "thumbnail", "priority": priority,
               "input": {"source": {"key": format!("{}a.png", input_prefix("alice"))}, "widths": [8]}})
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
    let thumbnail = json!({"type": "thumbnail", "input": {"source": {"key": format!("{}a.png", input_prefix("alice"))}, "widths": [8]}});
    let slow = handle(&f.deps, post(&thumbnail.to_string(), &[], Some("alice"))).await;
    assert_eq!(slow.status_code, 202, "{:?}", slow.body);
}

fn post(body: &str, headers: &[(&str, &str)], owner: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut all: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    for (name, value) in headers {
        all.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        all.push(((*name).into(), (*value).into()));
    }
    HttpEvent {
        route_key: "POST /jobs",
        method: "POST",
        path: "/jobs",
        query: "",
        headers: all,
        body: Some(body.as_bytes()),
        path_parameters: Vec::new(),
        owner,
    }
    .to_request()
}

use longrun_lambda::testing::response_json as body_json;

/// name, body, headers, expected status.
type BadRequest<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, i64);

const SLEEP: &str = r#"{"type": "sleep", "input": {"seconds": 1}}"#;

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
    assert_eq!(job.owner, "alice");
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
    let key = format!("{}u1/a.png", input_prefix("alice"));
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
    assert_eq!(id, JobId::for_idempotency_key("bob", "k"));
    let mut alices = f.store.get(&id).await.unwrap().unwrap();
    alices.owner = "alice".into();
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
            r#"{"type": "sleep", "input": {"seconds": 1}, "delay_seconds": 901}"#.into(),
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
    f.deps.config = Arc::new(longrun_core::testing::config(&[("ALLOW_ANONYMOUS", "true")]));
    let response = handle(&f.deps, post(SLEEP, &[], None)).await;
    assert_eq!(response.status_code, 202);
    let id = longrun_core::JobId::parse(body_json(&response)["id"].as_str().unwrap()).unwrap();
    let stored = f.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.owner, longrun_lambda::apigw::ANONYMOUS_OWNER);
}

fn upload_request(body: &str, owner: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut request = post(body, &[], owner);
    request.route_key = Some("POST /uploads".into());
    request.raw_path = Some("/uploads".into());
    request
}

#[tokio::test]
async fn an_upload_is_a_short_lived_put_under_the_callers_own_prefix() {
    let f = fixture();
    let response = handle(
        &f.deps,
        upload_request(r#"{"bytes": 1234, "filename": "sales.csv"}"#, Some("alice")),
    )
    .await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let ticket: longrun_core::api::UploadTicket = serde_json::from_value(body_json(&response)).unwrap();
    let prefix = input_prefix("alice");
    let rest = ticket.key.strip_prefix(&prefix).expect("under alice's prefix");
    let (id, name) = rest.split_once('/').unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{rest}");
    assert_eq!(name, "sales.csv");
    assert!(longrun_core::access::owns_input("alice", &ticket.key));
    assert!(!longrun_core::access::owns_input("bob", &ticket.key));
    assert_eq!((ticket.method.as_str(), ticket.bytes), ("PUT", 1234));
    assert_eq!(ticket.headers["content-length"], "1234");
    assert_eq!(ticket.headers["content-type"], "application/octet-stream");
    assert!(
        ticket.upload_url.contains("bytes=1234") && ticket.upload_url.contains("expires_in=300"),
        "{}",
        ticket.upload_url
    );
    let second = handle(&f.deps, upload_request(r#"{"bytes": 1}"#, Some("alice"))).await;
    let second: longrun_core::api::UploadTicket = serde_json::from_value(body_json(&second)).unwrap();
    assert_ne!(second.key, ticket.key, "every upload gets a key of its own");
    assert!(second.key.ends_with("/input"));
    assert!(
        f.store.is_empty() && f.queue.sent().is_empty(),
        "an upload writes no job"
    );
}

#[tokio::test]
async fn uploads_refuse_bad_sizes_names_bodies_and_anonymous_callers() {
    let f = fixture();
    let cap = f.deps.config.max_upload_bytes;
    let cases = [
        (r#"{"bytes": 0}"#.to_owned(), 422),
        (format!(r#"{{"bytes": {}}}"#, cap + 1), 422),
        (r#"{"bytes": -1}"#.to_owned(), 422),
        (r#"{"bytes": 10, "filename": "../x"}"#.to_owned(), 422),
        (r#"{"bytes": 10, "filename": "a/b"}"#.to_owned(), 422),
        (r#"{"bytes": 10, "filename": ".hidden"}"#.to_owned(), 422),
        (r#"{"bytes": 10, "key": "inputs/x"}"#.to_owned(), 422),
        ("{not json".to_owned(), 400),
    ];
    for (body, status) in &cases {
        let response = handle(&f.deps, upload_request(body, Some("alice"))).await;
        assert_eq!(response.status_code, *status, "{body}: {:?}", response.body);
        assert_eq!(response.headers["content-type"], "application/problem+json");
    }
    let at_cap = handle(
        &f.deps,
        upload_request(&format!(r#"{{"bytes": {cap}}}"#), Some("alice")),
    )
    .await;
    assert_eq!(at_cap.status_code, 201);
    assert_eq!(
        handle(&f.deps, upload_request(r#"{"bytes": 1}"#, None))
            .await
            .status_code,
        401
    );
}

#[tokio::test]
async fn a_job_may_only_name_its_owners_own_inputs() {
    let f = fixture();
    let report = |key: &str| {
        json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["g"], "values": ["v"]}}).to_string()
    };
    let alices = format!("{}u1/sales.csv", input_prefix("alice"));
    let refused = [
        alices.clone(),
        "inputs/sales.csv".to_owned(),
        format!("{}u1/../../{}x.csv", input_prefix("bob"), input_prefix("bob")),
        format!("{}u1//sales.csv", input_prefix("bob")),
        format!("{}%2e%2e/sales.csv", input_prefix("bob")),
    ];
    for key in &refused {
        let response = handle(&f.deps, post(&report(key), &[], Some("bob"))).await;
        assert_eq!(response.status_code, 422, "{key}");
        let problem = body_json(&response);
        assert_eq!(problem["errors"][0]["field"], "input.source.key", "{problem}");
        assert!(!problem.to_string().contains("alice"), "nothing about alice: {problem}");
    }
    assert!(f.store.is_empty());
    let own = handle(&f.deps, post(&report(&alices), &[], Some("alice"))).await;
    assert_eq!(own.status_code, 202, "{:?}", own.body);
}

fn webhook_secret_request(owner: Option<&str>) -> ApiGatewayV2httpRequest {
    HttpEvent {
        route_key: "POST /webhook-secret",
        method: "POST",
        path: "/webhook-secret",
        query: "",
        headers: Vec::new(),
        body: None,
        path_parameters: Vec::new(),
        owner,
    }
    .to_request()
}

/// A public address given as an IP literal: allowed with the switch off,
/// and nothing resolves or connects at submit.
const PUBLIC_HOOK: &str = "https://1.1.1.1/hooks/longrun";

fn sleep_calling_back(url: &str) -> String {
    json!({"type": "sleep", "input": {"seconds": 1}, "callback_url": url}).to_string()
}

/// The fields of a 422's errors, in order.
fn error_fields(response: &ApiGatewayV2httpResponse) -> Vec<String> {
    assert_eq!(response.status_code, 422, "{:?}", response.body);
    body_json(response)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_callback_needs_the_callers_webhook_secret_then_is_stored_with_the_job() {
    let f = fixture();
    let body = sleep_calling_back(PUBLIC_HOOK);
    let refused = handle(&f.deps, post(&body, &[], Some("alice"))).await;
    assert_eq!(error_fields(&refused), ["callback_url"]);
    let message = body_json(&refused)["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("POST /webhook-secret"), "{message}");
    assert!(
        f.store.is_empty() && f.queue.sent().is_empty(),
        "nothing written or sent"
    );

    let made = handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    assert_eq!(made.status_code, 201, "{:?}", made.body);
    let accepted = handle(&f.deps, post(&body, &[], Some("alice"))).await;
    assert_eq!(accepted.status_code, 202, "{:?}", accepted.body);
    let id = JobId::parse(body_json(&accepted)["id"].as_str().unwrap()).unwrap();
    let job = f.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.callback, Some(Callback::new(PUBLIC_HOOK)));
    assert_eq!(f.queue.sent().len(), 1);

    let bob = handle(&f.deps, post(&body, &[], Some("bob"))).await;
    assert_eq!(error_fields(&bob), ["callback_url"], "a secret is its owner's only");
}

#[tokio::test]
async fn a_webhook_secret_is_answered_once_uncached_and_a_rotation_keeps_the_old_one_for_the_overlap() {
    let f = fixture();
    let first = handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    assert_eq!(first.status_code, 201, "{:?}", first.body);
    assert_eq!(first.headers["cache-control"], "no-store");
    let first = body_json(&first);
    let first_secret = first["secret"].as_str().unwrap().to_owned();
    assert!(first_secret.starts_with("whsec_"), "{first_secret}");
    assert!(longrun_core::webhook::signature::WebhookSecret::parse(&first_secret).is_ok());
    assert!(first.get("previous_valid_until").is_none(), "nothing replaced: {first}");

    let second = handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    assert_eq!(second.status_code, 201);
    assert_eq!(second.headers["cache-control"], "no-store");
    let second = body_json(&second);
    let second_secret = second["secret"].as_str().unwrap();
    assert!(second_secret.starts_with("whsec_"));
    assert_ne!(second_secret, first_secret, "a rotation makes a new secret");

    let stored = f.store.webhook_secrets("alice").await.unwrap().unwrap();
    assert_eq!(stored.current, second_secret);
    assert_eq!(stored.previous.as_deref(), Some(first_secret.as_str()));
    let overlap_ms = f.deps.config.webhook_secret_overlap_seconds * 1000;
    assert_eq!(stored.previous_valid_until, Some(stored.created_at + overlap_ms));
    assert_eq!(
        second["previous_valid_until"].as_str(),
        Some(longrun_core::time::rfc3339(stored.created_at + overlap_ms).as_str())
    );
    assert!(f.store.webhook_secrets("bob").await.unwrap().is_none());
    let anonymous = handle(&f.deps, webhook_secret_request(None)).await;
    assert_eq!(anonymous.status_code, 401);
}

#[tokio::test]
async fn with_the_switch_off_callbacks_to_plain_http_or_internal_addresses_are_refused() {
    let f = fixture();
    assert!(!f.deps.config.webhook_allow_insecure_targets);
    handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    for url in [
        "http://1.1.1.1/hooks",
        "https://127.0.0.1/",
        "https://[::ffff:10.0.0.1]/",
        "https://169.254.169.254/",
    ] {
        let refused = handle(&f.deps, post(&sleep_calling_back(url), &[], Some("alice"))).await;
        assert_eq!(error_fields(&refused), ["callback_url"], "{url}");
    }
    assert!(f.store.is_empty() && f.queue.sent().is_empty());
    let public = handle(&f.deps, post(&sleep_calling_back(PUBLIC_HOOK), &[], Some("alice"))).await;
    assert_eq!(
        public.status_code, 202,
        "a public https target passes: {:?}",
        public.body
    );
}

fn with_then(then: Value) -> String {
    json!({"type": "sleep", "input": {"seconds": 1}, "then": then}).to_string()
}

fn sleep_steps(count: usize) -> Value {
    Value::Array(
        (0..count)
            .map(|_| json!({"type": "sleep", "input": {"seconds": 1}}))
            .collect(),
    )
}

#[tokio::test]
async fn a_chain_of_more_than_five_further_steps_is_refused() {
    let f = fixture();
    let refused = handle(&f.deps, post(&with_then(sleep_steps(6)), &[], Some("alice"))).await;
    assert_eq!(error_fields(&refused), ["then"]);
    assert!(f.store.is_empty());
    let five = handle(&f.deps, post(&with_then(sleep_steps(5)), &[], Some("alice"))).await;
    assert_eq!(five.status_code, 202, "{:?}", five.body);
}

#[tokio::test]
async fn a_step_of_an_unknown_type_or_with_a_bad_placeholder_is_refused_on_its_field() {
    let f = fixture();
    let unknown = handle(
        &f.deps,
        post(
            &with_then(json!([{"type": "mine-bitcoin", "input": {}}])),
            &[],
            Some("alice"),
        ),
    )
    .await;
    assert_eq!(error_fields(&unknown), ["then[0].type"]);

    let bad_name = json!([{"type": "report",
        "input": {"source": {"from_previous": "../x"}, "group_by": ["region"], "values": ["amount"]}}]);
    let refused = handle(&f.deps, post(&with_then(bad_name), &[], Some("alice"))).await;
    assert_eq!(error_fields(&refused), ["then[0].input"]);
    assert!(
        body_json(&refused)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("../x"),
        "{:?}",
        refused.body
    );

    let second_bad = json!([
        {"type": "sleep", "input": {"seconds": 1}},
        {"type": "sleep", "input": {"seconds": -1}},
    ]);
    let refused = handle(&f.deps, post(&with_then(second_bad), &[], Some("alice"))).await;
    let fields = error_fields(&refused);
    assert!(
        !fields.is_empty() && fields.iter().all(|field| field.starts_with("then[1].input")),
        "{fields:?}"
    );
    assert!(f.store.is_empty() && f.queue.sent().is_empty());
}

#[tokio::test]
async fn a_valid_chain_is_stored_as_the_first_jobs_chain() {
    let f = fixture();
    let then = json!([{"type": "report",
        "input": {"source": {"from_previous": "summary.csv"}, "group_by": ["region"], "values": ["amount_sum"]}}]);
    let body = json!({"type": "report",
        "input": {"source": {"key": format!("{}u1/sales.csv", input_prefix("alice"))},
                  "group_by": ["region"], "values": ["amount"]},
        "then": then});
    let accepted = handle(&f.deps, post(&body.to_string(), &[], Some("alice"))).await;
    assert_eq!(accepted.status_code, 202, "{:?}", accepted.body);
    let id = JobId::parse(body_json(&accepted)["id"].as_str().unwrap()).unwrap();
    let job = f.store.get(&id).await.unwrap().unwrap();
    let link = job.chain.expect("the first job carries its chain");
    assert_eq!((link.step, &link.chain_id), (0, &id));
    assert_eq!(link.previous_job_id, None);
    assert!(link.readable_results.is_empty(), "the first job reads no results");
    let steps: Vec<ChainStep> = serde_json::from_value(then).unwrap();
    assert_eq!(link.then, steps, "kept as given, placeholder and all");
    assert_eq!(f.queue.sent().len(), 1, "only the first job is sent");
    assert_eq!(f.store.len(), 1, "the next step is made when this one succeeds");
}

#[tokio::test]
async fn the_replay_of_a_key_must_repeat_its_then_and_callback_url() {
    let f = fixture();
    handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    let key = [("Idempotency-Key", "chain-1")];
    let first = handle(&f.deps, post(&with_then(sleep_steps(1)), &key, Some("alice"))).await;
    assert_eq!(first.status_code, 202);
    let reused = |response: &ApiGatewayV2httpResponse| {
        assert_eq!(response.status_code, 422, "{:?}", response.body);
        assert_eq!(
            body_json(response)["type"],
            "urn:longrun:problem:idempotency-key-reused"
        );
    };
    reused(&handle(&f.deps, post(&with_then(sleep_steps(2)), &key, Some("alice"))).await);
    reused(&handle(&f.deps, post(SLEEP, &key, Some("alice"))).await);
    let replay = handle(&f.deps, post(&with_then(sleep_steps(1)), &key, Some("alice"))).await;
    assert_eq!(replay.status_code, 200, "the same then replays");

    let key = [("Idempotency-Key", "hook-1")];
    let first = handle(&f.deps, post(&sleep_calling_back(PUBLIC_HOOK), &key, Some("alice"))).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    let other = "https://1.1.1.1/hooks/other";
    reused(&handle(&f.deps, post(&sleep_calling_back(other), &key, Some("alice"))).await);
    reused(&handle(&f.deps, post(SLEEP, &key, Some("alice"))).await);
    let replay = handle(&f.deps, post(&sleep_calling_back(PUBLIC_HOOK), &key, Some("alice"))).await;
    assert_eq!(replay.status_code, 200);
    assert_eq!(f.store.len(), 2, "one record per key");
}
