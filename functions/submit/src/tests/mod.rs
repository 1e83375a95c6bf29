//! Submit's unit tests, over the in-memory adapters.

mod admission;
mod callbacks;
mod chains;
mod quotas;
mod schedule_races;
mod schedules;
mod uploads;

use super::*;
use longrun_core::access::input_prefix;
use longrun_core::chain::ChainStep;
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::{JobLifecycle, OwnerData, QuotaSlots};
use longrun_core::record::Callback;
use longrun_core::JobStatus;
use longrun_lambda::apigw::HttpEvent;
use serde_json::{json, Value};

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
    let config = Arc::new(longrun_core::fixtures::config(&settings));
    let store = Arc::new(MemoryJobStore::new().with_owner_quotas());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow", "urgent", "bulk"]));
    let deps = SubmitDeps {
        registry: Arc::new(longrun_jobs::standard(&config)),
        store: store.clone(),
        depths: Arc::new(longrun_core::backpressure::DepthGauge::new(
            queue.clone(),
            config.queue_depth_sample,
        )),
        repairs: Arc::default(),
        queue: queue.clone(),
        objects: Arc::new(MemoryObjectStore::new()),
        config,
    };
    Fixture { deps, store, queue }
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
        jwt_claims: HttpEvent::claims_of(owner),
    }
    .to_request()
}

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
        jwt_claims: HttpEvent::claims_of(owner),
    }
    .to_request()
}

fn upload_request(body: &str, owner: Option<&str>) -> ApiGatewayV2httpRequest {
    let mut request = post(body, &[], owner);
    request.route_key = Some("POST /uploads".into());
    request.raw_path = Some("/uploads".into());
    request
}

use longrun_lambda::fixtures::response_json as body_json;

/// The owner the caller `name` is (named by the local issuer, as [`post`] sends it).
fn owner(name: &str) -> String {
    longrun_lambda::apigw::local_owner(name)
}

/// name, body, headers, expected status.
type BadRequest<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, i64);

const SLEEP: &str = r#"{"type": "sleep", "input": {"seconds": 1}}"#;

/// A public address given as an IP literal: allowed with the switch off,
/// and nothing resolves or connects at submit.
const PUBLIC_HOOK: &str = "https://1.1.1.1/hooks/longrun";
