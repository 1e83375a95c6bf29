//! Status's unit tests, over the in-memory adapters.

use super::*;
use longrun_core::bytes::Bytes;
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::ClaimOutcome;
use longrun_core::ports::JobLifecycle;
use longrun_core::ports::JobQueue;
use longrun_core::record::{Finish, JobError, Lease};
use longrun_core::time::now_ms;
use longrun_core::{JobId, ResultObject};
use longrun_lambda::apigw::HttpEvent;
use serde_json::{json, Value};

struct Fixture {
    deps: StatusDeps,
    store: Arc<MemoryJobStore>,
    queue: Arc<MemoryJobQueue>,
}

fn fixture() -> Fixture {
    let store = Arc::new(MemoryJobStore::new());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
    let config = Arc::new(longrun_core::fixtures::config(&[("QUEUE_DEPTH_SAMPLE_MS", "0")]));
    let deps = StatusDeps {
        depths: Arc::new(longrun_core::backpressure::DepthGauge::new(
            queue.clone(),
            config.queue_depth_sample,
        )),
        config,
        store: store.clone(),
        objects: Arc::new(MemoryObjectStore::new()),
    };
    Fixture { deps, store, queue }
}

#[tokio::test]
async fn a_queued_job_shows_the_work_waiting_in_its_queue_and_others_do_not() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());
    for _ in 0..4 {
        let message = longrun_core::ports::JobMessage::for_job(&job, now_ms());
        f.queue.enqueue(&job.queue, &message, 0).await.unwrap();
    }
    let view = body_json(&handle(&f.deps, get(job.id.as_str(), "", Some("alice"))).await);
    assert_eq!(view["queue_depth"], 4, "{view}");

    let lease = Lease::new(now_ms() + 60_000);
    f.store.claim(&job.id, &lease, now_ms()).await.unwrap();
    let running = body_json(&handle(&f.deps, get(job.id.as_str(), "", Some("alice"))).await);
    assert_eq!(running["status"], "RUNNING");
    assert!(running.get("queue_depth").is_none(), "{running}");
}

/// A queued job of the caller `name` (as the local issuer names callers).
fn queued_job(name: &str) -> JobRecord {
    let owner = longrun_lambda::apigw::local_owner(name);
    longrun_core::fixtures::queued_job(&owner, "sleep", json!({"seconds": 1}))
}

fn get(id: &str, query: &str, owner: Option<&str>) -> ApiGatewayV2httpRequest {
    HttpEvent {
        route_key: "GET /jobs/{id}",
        method: "GET",
        path: &format!("/jobs/{id}"),
        query,
        headers: Vec::new(),
        body: None,
        path_parameters: vec![("id".into(), id.into())],
        jwt_claims: HttpEvent::claims_of(owner),
    }
    .to_request()
}

use longrun_lambda::fixtures::response_json as body_json;

#[tokio::test]
async fn shows_a_queued_job_to_its_owner() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());
    let response = handle(&f.deps, get(job.id.as_str(), "", Some("alice"))).await;
    assert_eq!(response.status_code, 200);
    let view = body_json(&response);
    assert_eq!(view["id"], job.id.as_str());
    assert_eq!(view["status"], "QUEUED");
    assert_eq!(view["progress"], 0);
    assert!(view.get("result_url").is_none());
}

#[tokio::test]
async fn unknown_malformed_and_foreign_ids_are_404_problems() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());
    let random = JobId::random();
    for (id, owner) in [
        (random.as_str(), Some("alice")),
        ("not-a-job-id", Some("alice")),
        (job.id.as_str(), Some("mallory")),
    ] {
        let response = handle(&f.deps, get(id, "", owner)).await;
        assert_eq!(response.status_code, 404, "{id} as {owner:?}");
        assert_eq!(response.headers["content-type"], "application/problem+json");
        assert_eq!(body_json(&response)["status"], 404);
    }
}

#[tokio::test]
async fn a_succeeded_job_links_each_result() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());
    let lease = Lease::new(now_ms() + 60_000);
    let ClaimOutcome::Claimed(_) = f.store.claim(&job.id, &lease, now_ms()).await.unwrap() else {
        panic!("claimable")
    };
    let result = ResultObject {
        name: "sleep.json".into(),
        key: format!("results/{}/sleep.json", job.id),
        content_type: "application/json".into(),
        bytes: 2,
    };
    f.deps
        .objects
        .put(&result.key, Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();
    let finish = Finish::Succeeded {
        results: vec![result],
        next: None,
    };
    f.store.finish(&job.id, &lease.token, &finish, now_ms()).await.unwrap();

    let view = body_json(&handle(&f.deps, get(job.id.as_str(), "", Some("alice"))).await);
    assert_eq!(view["status"], "SUCCEEDED");
    assert_eq!(view["progress"], 100);
    let expected_url = format!("memory://results/{}/sleep.json?expires_in=900", job.id);
    assert_eq!(view["result_url"], expected_url.as_str());
    assert_eq!(view["results"][0]["name"], "sleep.json");
    assert!(view["finished_at"].is_string());
}

#[tokio::test]
async fn a_failed_job_shows_its_coded_error() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());
    let lease = Lease::new(now_ms() + 60_000);
    f.store.claim(&job.id, &lease, now_ms()).await.unwrap();
    let error = JobError::permanent("invalid_number", "line 3");
    f.store
        .finish(&job.id, &lease.token, &Finish::Failed { error }, now_ms())
        .await
        .unwrap();
    let view = body_json(&handle(&f.deps, get(job.id.as_str(), "", Some("alice"))).await);
    assert_eq!(view["status"], "FAILED");
    assert_eq!(
        view["error"],
        json!({"code": "invalid_number", "message": "line 3", "retryable": false})
    );
}

#[tokio::test(start_paused = true)]
async fn long_polls_until_the_job_ends_or_the_wait_runs_out() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());

    let started = tokio::time::Instant::now();
    let view = body_json(&handle(&f.deps, get(job.id.as_str(), "wait=3", Some("alice"))).await);
    assert_eq!(view["status"], "QUEUED");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );

    let store = f.store.clone();
    let id = job.id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let lease = Lease::new(now_ms() + 60_000);
        store.claim(&id, &lease, now_ms()).await.unwrap();
        store
            .finish(&id, &lease.token, &Finish::Cancelled, now_ms())
            .await
            .unwrap();
    });
    let started = tokio::time::Instant::now();
    let view = body_json(&handle(&f.deps, get(job.id.as_str(), "wait=20", Some("alice"))).await);
    assert_eq!(view["status"], "CANCELLED");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn bad_wait_values_are_400() {
    let f = fixture();
    let job = queued_job("alice");
    f.store.insert(job.clone());
    for query in ["wait=21", "wait=-1", "wait=soon"] {
        let response = handle(&f.deps, get(job.id.as_str(), query, Some("alice"))).await;
        assert_eq!(response.status_code, 400, "{query}");
    }
}

#[tokio::test]
async fn a_caller_without_identity_is_401_and_learns_nothing() {
    let mut f = fixture();
    let job = longrun_core::fixtures::queued_job(
        longrun_lambda::identity::ANONYMOUS_OWNER,
        "sleep",
        json!({"seconds": 1}),
    );
    f.store.insert(job.clone());
    for request in [get(job.id.as_str(), "", None), get("not-a-job-id", "", None), {
        let mut listing = list("", "x");
        listing.request_context.authorizer = None;
        listing
    }] {
        let response = handle(&f.deps, request).await;
        assert_eq!(response.status_code, 401);
        assert_eq!(response.headers["www-authenticate"], "Bearer");
        assert_eq!(body_json(&response)["type"], "urn:longrun:problem:unauthorized");
    }
    // Only an explicit ALLOW_ANONYMOUS lets such callers in, as one shared owner.
    f.deps.config = Arc::new(longrun_core::fixtures::config(&[("ALLOW_ANONYMOUS", "true")]));
    assert_eq!(handle(&f.deps, get(job.id.as_str(), "", None)).await.status_code, 200);
}

fn list(query: &str, owner: &str) -> ApiGatewayV2httpRequest {
    HttpEvent {
        route_key: "GET /jobs",
        method: "GET",
        path: "/jobs",
        query,
        headers: Vec::new(),
        body: None,
        path_parameters: Vec::new(),
        jwt_claims: HttpEvent::claims_of(Some(owner)),
    }
    .to_request()
}

#[tokio::test]
async fn lists_the_callers_jobs_newest_first_in_pages() {
    let f = fixture();
    let mut mine = Vec::new();
    for i in 0..5 {
        let mut job = queued_job("alice");
        job.created_at += i;
        f.store.insert(job.clone());
        mine.push(job.id.to_string());
    }
    f.store.insert(queued_job("bob"));
    mine.reverse();

    let first = body_json(&handle(&f.deps, list("limit=2", "alice")).await);
    let ids = |page: &Value| -> Vec<String> {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), mine[..2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = body_json(&handle(&f.deps, list(&format!("limit=2&cursor={cursor}"), "alice")).await);
    assert_eq!(ids(&second), mine[2..4]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = body_json(&handle(&f.deps, list(&format!("limit=2&cursor={cursor}"), "alice")).await);
    assert_eq!(ids(&last), mine[4..]);
    assert!(last.get("next_cursor").is_none());

    let bobs = body_json(&handle(&f.deps, list("", "bob")).await);
    assert_eq!(bobs["jobs"].as_array().unwrap().len(), 1);
    let failed_only = body_json(&handle(&f.deps, list("status=FAILED", "alice")).await);
    assert!(failed_only["jobs"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn another_callers_cursor_is_a_400_problem() {
    let f = fixture();
    for i in 0..2 {
        let mut job = queued_job("alice");
        job.created_at += i;
        f.store.insert(job);
    }
    f.store.insert(queued_job("bob"));
    let alices = body_json(&handle(&f.deps, list("limit=1", "alice")).await);
    let cursor = alices["next_cursor"].as_str().unwrap();

    let response = handle(&f.deps, list(&format!("limit=1&cursor={cursor}"), "bob")).await;
    assert_eq!(response.status_code, 400);
    assert_eq!(response.headers["content-type"], "application/problem+json");
    assert!(
        !body_json(&response).to_string().contains("alice"),
        "nothing of alice's shows"
    );
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let f = fixture();
    for query in ["limit=0", "limit=101", "limit=x", "status=DONE", "cursor=garbage"] {
        let response = handle(&f.deps, list(query, "alice")).await;
        assert_eq!(response.status_code, 400, "{query}");
        assert_eq!(response.headers["content-type"], "application/problem+json");
    }
}

fn stream_request(id: &str, owner: Option<&str>) -> ApiGatewayV2httpRequest {
    HttpEvent {
        route_key: STREAM_ROUTE,
        method: "POST",
        path: &format!("/jobs/{id}/stream"),
        query: "",
        headers: Vec::new(),
        body: None,
        path_parameters: vec![("id".into(), id.into())],
        jwt_claims: HttpEvent::claims_of(owner),
    }
    .to_request()
}

#[tokio::test]
async fn an_owner_gets_stream_urls_up_to_its_limit_per_minute_then_429() {
    let mut f = fixture();
    f.deps.config = Arc::new(longrun_core::fixtures::config(&[
        ("STREAM_TICKETS_PER_MINUTE", "2"),
        ("EVENTS_URL", "https://events.example"),
    ]));
    let (mine, theirs) = (queued_job("alice"), queued_job("bob"));
    f.store.insert(mine.clone());
    f.store.insert(theirs.clone());
    for _ in 0..2 {
        let handed = handle(&f.deps, stream_request(mine.id.as_str(), Some("alice"))).await;
        assert_eq!(handed.status_code, 201, "{:?}", handed.body);
    }
    let refused = handle(&f.deps, stream_request(mine.id.as_str(), Some("alice"))).await;
    assert_eq!(refused.status_code, 429, "{:?}", refused.body);
    assert_eq!(body_json(&refused)["type"], "urn:longrun:problem:rate-limited");
    let retry_after: u32 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let other = handle(&f.deps, stream_request(theirs.id.as_str(), Some("bob"))).await;
    assert_eq!(other.status_code, 201, "another owner has a limit of its own");
}
