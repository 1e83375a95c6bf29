//! `make bench`: measures longrun against the emulator and prints Markdown
//! for BENCHMARKS.md. Everything runs in this one process over the real
//! handler functions and AWS SDK clients (built from `template.yaml` by the
//! local runtime's library), so the ratios compare like with like:
//!
//! 1. submit latency: our submit handler vs the bare DynamoDB PutItem + SQS
//!    SendMessage it is built on, interleaved, same emulator, same run;
//! 2. AWS requests per job, counted by an SDK interceptor on every call;
//! 3. the `report` job streaming CSVs of 64 MiB to 1 GiB against a bare
//!    `csv` aggregation of the same objects, and the worker's peak memory
//!    (VmHWM) meanwhile;
//! 4. cold starts of every function binary against a `lambda_runtime` hello
//!    world, over a stub Runtime API ([`cold_start`]);
//! 5. (`BENCH_ONLY=time`, its own section) how late jobs asked for a time,
//!    and schedule ticks, start ([`time`]);
//! 6. (`BENCH_ONLY=resume`, its own section) a large report in one
//!    invocation against the same report through short ones ([`resume`]);
//! 7. (`BENCH_ONLY=quota`, its own section) submit with the owner quota on
//!    against its floor, the bare UpdateItem + PutItem + SendMessage ([`quota`]).
//!
//! Needs `AWS_ENDPOINT_URL` (the emulator); `infra/scripts/bench.sh` sets it up.

mod cold_start;
mod quota;
mod requests;
mod resume;
mod throughput;
mod time;

use self::requests::{requests_per_job, submit_latency, wait_all_terminal};
use self::throughput::{batch_throughput, sqs_event, streaming_throughput_and_memory};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use longrun_aws::AwsClients;
use longrun_core::time::now_ms;
use longrun_core::JobId;
use longrun_lambda::apigw::HttpEvent;
use longrun_local::functions::LocalFunction;
use longrun_local::{LocalStack, Options};

/// Counts every AWS request by `Service.Operation`.
#[derive(Debug, Default, Clone)]
struct RequestCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestCounter {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    /// Only requests that got a response count (presigning runs the same
    /// pipeline up to signing but never transmits).
    fn read_before_deserialization(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            let key = format!("{}.{}", metadata.service(), metadata.name());
            *self.counts.lock().unwrap().entry(key).or_default() += 1;
        }
        Ok(())
    }
}

fn counting_clients(shared: &aws_config::SdkConfig, counter: &RequestCounter) -> AwsClients {
    AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(shared)
                .interceptor(counter.clone())
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(shared)
                .interceptor(counter.clone())
                .build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(shared)
                .force_path_style(true)
                .interceptor(counter.clone())
                .build(),
        ),
        read_rate: 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `/proc/self/status` field of this process in KiB (`VmHWM`: peak
/// resident set; `VmRSS`: resident set now).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Bench {
    stack: LocalStack,
    counter: RequestCounter,
    plain: AwsClients,
    fast_queue_url: String,
    table: String,
    bucket: String,
}

impl Bench {
    /// The bench over a started local `stack`: its queue, table and bucket.
    fn new(stack: LocalStack, counter: RequestCounter, plain: AwsClients) -> Self {
        let refs = &stack.api.deployed.refs;
        Bench {
            fast_queue_url: refs["FastQueue"].clone(),
            table: refs["JobsTable"].clone(),
            bucket: refs["JobsBucket"].clone(),
            stack,
            counter,
            plain,
        }
    }

    /// The template function `logical_id`, wired as the local runtime runs it.
    fn function(&self, logical_id: &str) -> &LocalFunction {
        self.stack
            .functions
            .iter()
            .find(|f| f.spec.logical_id == logical_id)
            .expect("function in template")
    }

    fn submit_event(body: &str) -> aws_lambda_events::apigw::ApiGatewayV2httpRequest {
        HttpEvent {
            body: Some(body.as_bytes()),
            ..api_event("POST /jobs", "POST", "/jobs", None)
        }
        .to_request()
    }

    async fn submit(&self, body: &str) -> String {
        let submit = self.function("SubmitFunction").http().expect("an HTTP function");
        let response = submit.call(Self::submit_event(body)).await;
        assert_eq!(response.status_code, 202, "{:?}", response.body);
        match response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => {
                let view: serde_json::Value = serde_json::from_str(&text).unwrap();
                view["id"].as_str().unwrap().to_owned()
            }
            other => panic!("unexpected body {other:?}"),
        }
    }

    /// The bare calls submit is built on: one PutItem of a same-sized item and one SendMessage.
    async fn bare_put_and_send(&self, body: &str) {
        let id = JobId::random();
        let now = now_ms();
        let item: std::collections::HashMap<String, AttributeValue> = [
            ("pk", AttributeValue::S(id.to_string())),
            ("owner", AttributeValue::S("bench".into())),
            ("job_type", AttributeValue::S("sleep".into())),
            ("queue", AttributeValue::S("fast".into())),
            ("status", AttributeValue::S("QUEUED".into())),
            ("input", AttributeValue::S(body.into())),
            ("request_hash", AttributeValue::S("0".repeat(64))),
            ("attempts", AttributeValue::N("0".into())),
            ("max_attempts", AttributeValue::N("3".into())),
            ("progress", AttributeValue::N("0".into())),
            ("cancel_requested", AttributeValue::Bool(false)),
            ("created_at", AttributeValue::N(now.to_string())),
            ("updated_at", AttributeValue::N(now.to_string())),
            ("due_at", AttributeValue::N(now.to_string())),
            ("due_shard", AttributeValue::S(longrun_aws::due_shard(&id))),
            ("expires_at", AttributeValue::N((now / 1000 + 86_400).to_string())),
            ("version", AttributeValue::N("1".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.plain
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
        self.plain
            .sqs
            .send_message()
            .queue_url(&self.fast_queue_url)
            .message_body(serde_json::json!({"job_id": id, "enqueued_at": now}).to_string())
            .send()
            .await
            .unwrap();
    }

    async fn purge(&self) {
        let _ = self
            .plain
            .sqs
            .purge_queue()
            .queue_url(&self.fast_queue_url)
            .send()
            .await;
    }
}

/// The first event each function gets in the cold-start runs: one that
/// makes the AWS calls its first real request would.
fn first_event(logical_id: &str, existing_job: &str) -> (serde_json::Value, &'static str) {
    let http = |event: HttpEvent| serde_json::to_value(event.to_request()).unwrap();
    let sqs = |job_id: &str| serde_json::to_value(sqs_event(&[job_id.to_owned()])).unwrap();
    let unknown = JobId::random().to_string();
    match logical_id {
        "SubmitFunction" => (
            serde_json::to_value(Bench::submit_event(r#"{"type":"sleep","input":{"seconds":0}}"#)).unwrap(),
            "`POST /jobs`: PutItem + SendMessage",
        ),
        "StatusFunction" => (
            http(api_event(
                "GET /jobs/{id}",
                "GET",
                &format!("/jobs/{existing_job}"),
                Some(existing_job),
            )),
            "`GET /jobs/{id}` of a job: GetItem",
        ),
        "CancelFunction" => (
            http(api_event(
                "POST /jobs/{id}/cancel",
                "POST",
                &format!("/jobs/{unknown}/cancel"),
                Some(&unknown),
            )),
            "cancel an unknown job: 404 after its store call",
        ),
        "FastWorkerFunction" | "SlowWorkerFunction" | "DeadLetterFunction" | "WebhookFunction" => (
            sqs(&unknown),
            "a message for an unknown job: its store call, then acknowledged",
        ),
        "ReconcilerFunction" => (serde_json::json!({}), "one pass: a Query on each of the 16 due shards"),
        "EventsFunction" => (
            http(api_event(
                "GET /jobs/{id}/events",
                "GET",
                &format!("/jobs/{unknown}/events"),
                Some(&unknown),
            )),
            "a stream without a ticket: 401, no AWS call",
        ),
        other => panic!("no cold-start event for {other}"),
    }
}

/// An API Gateway request of the caller `bench` on `route_key`, without a
/// body; `id` is the `{id}` path parameter.
fn api_event<'a>(route_key: &'a str, method: &'a str, path: &'a str, id: Option<&str>) -> HttpEvent<'a> {
    HttpEvent {
        route_key,
        method,
        path,
        query: "",
        headers: vec![("content-type".into(), "application/json".into())],
        body: None,
        path_parameters: id.map(|id| vec![("id".to_owned(), id.to_owned())]).unwrap_or_default(),
        jwt_claims: HttpEvent::claims_of(Some("bench")),
    }
}

/// Cold starts of the hello world and of every function binary of the
/// template (`BENCH_BIN_DIR`, default `target/release`). With
/// `BENCH_PAIR_BIN_DIR`, each role is also started from that directory's
/// binary named after the role (`submit`, `worker`, …: per-function
/// binaries of an older build), in the same interleaved rounds, so that the
/// two builds are compared within one run.
async fn cold_starts(bench: &Bench, rounds: usize) {
    let dir = PathBuf::from(std::env::var("BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()));
    let paired = std::env::var("BENCH_PAIR_BIN_DIR").ok().map(PathBuf::from);
    let existing_job = bench.submit(r#"{"type":"sleep","input":{"seconds":0}}"#).await;
    let mut targets = vec![cold_start::Target {
        name: "hello world (`lambda_runtime`, echo)".into(),
        binary: dir.join("hello"),
        environment: BTreeMap::new(),
        event: serde_json::json!({"hello": "world"}),
        first_invoke: "echoes the event",
    }];
    let mut seen = std::collections::BTreeSet::new();
    for function in &bench.stack.functions {
        if !seen.insert(function.spec.function.clone()) {
            continue; // the slow worker plays the worker, as the fast one does
        }
        let (event, first_invoke) = first_event(&function.spec.logical_id, &existing_job);
        if let Some(paired) = &paired {
            targets.push(cold_start::Target {
                name: format!(
                    "{} (`{}`), paired build",
                    function.spec.logical_id, function.spec.function
                ),
                binary: paired.join(&function.spec.function),
                environment: function.environment.clone(),
                event: event.clone(),
                first_invoke,
            });
        }
        targets.push(cold_start::Target {
            name: format!("{} (`{}`)", function.spec.logical_id, function.spec.function),
            binary: dir.join(&function.spec.binary),
            environment: function.environment.clone(),
            event,
            first_invoke,
        });
    }
    cold_start::measure(&targets, rounds).await;
}

/// A local stack named `stack` of the template (`LONGRUN_TEMPLATE`, default
/// `template.yaml`) with `overrides`, its workers and timers on, longrun's
/// standard job types, no faults.
fn stack_options(stack: String, overrides: &[(&str, &str)]) -> Options {
    Options {
        template: std::env::var("LONGRUN_TEMPLATE")
            .unwrap_or_else(|_| "template.yaml".into())
            .into(),
        stack,
        parameter_overrides: overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        workers: true,
        job_types: std::sync::Arc::new(longrun_jobs::standard),
        faults: BTreeMap::new(),
        // Nothing is served over HTTP here; the events function's URL only
        // has to resolve.
        base_url: Some("http://127.0.0.1:9".into()),
        jwks: None,
    }
}

#[tokio::main]
async fn main() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL must point at the emulator (run make bench)"
    );
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let shared = longrun_aws::http::load_sdk_config().await;
    let counter = RequestCounter::default();
    let clients = counting_clients(&shared, &counter);
    let plain = AwsClients::from_sdk_config(&shared);
    // The bench submits hundreds of jobs as one owner; with the template's
    // quota on, each job also makes two more UpdateItems (reserve and give
    // back its slot), not counted here.
    let options = stack_options(
        format!("longrun-bench-{}", now_ms()),
        &[
            ("EnableSleepJob", "true"),
            ("FastWorkerMaxConcurrency", "2"),
            ("MaxActiveJobsPerOwner", "0"),
        ],
    );
    let stack = longrun_local::start(&options, &shared, &clients)
        .await
        .expect("local stack");
    let bench = Bench::new(stack, counter, plain);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "quota" {
        for poller in &bench.stack.pollers {
            poller.abort();
        }
        quota::submit_with_quota(&shared, &bench.plain, rounds).await;
        return;
    }
    if only == "time" {
        // A stack of its own, with its own timers; the bench stack idles.
        for poller in &bench.stack.pollers {
            poller.abort();
        }
        time::start_lateness(&shared, &bench.plain).await;
        return;
    }
    if only == "resume" {
        for poller in &bench.stack.pollers {
            poller.abort();
        }
        resume::report_through_continuations(&bench).await;
        return;
    }
    if only.is_empty() || only == "requests" {
        requests_per_job(&bench, 20).await;
    }
    // Pollers off from here: latency, memory and cold starts are measured
    // without them competing.
    for poller in &bench.stack.pollers {
        poller.abort();
    }
    // Cold starts first: their first invokes then meet an emulator holding
    // little besides the request counts' jobs.
    if only.is_empty() || only == "cold-start" {
        cold_starts(&bench, 30).await;
    }
    match only.as_str() {
        "" => {
            submit_latency(&bench, rounds).await;
            streaming_throughput_and_memory(&bench).await;
            batch_throughput(&bench).await;
        }
        // Only the request counts (they do not depend on the build profile).
        "requests" => return,
        "batch" => batch_throughput(&bench).await,
        "memory" => streaming_throughput_and_memory(&bench).await,
        "cold-start" => {}
        other => panic!("BENCH_ONLY={other}: one of requests, batch, memory, cold-start, time, resume, quota"),
    }
}
