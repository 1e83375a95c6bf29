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
//!    world, over a stub Runtime API ([`cold_start`]).
//!
//! Needs `AWS_ENDPOINT_URL` (the emulator); `infra/scripts/bench.sh` sets it up.

mod cold_start;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use longrun_aws::AwsClients;
use longrun_core::ports::JobMessage;
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

async fn submit_latency(bench: &Bench, rounds: usize) {
    let body = r#"{"type":"sleep","input":{"seconds":0}}"#;
    // Warm both paths (connections, emulator caches).
    for _ in 0..20 {
        bench.submit(body).await;
        bench.bare_put_and_send(body).await;
    }
    let mut ours = Vec::with_capacity(rounds);
    let mut bare = Vec::with_capacity(rounds);
    for i in 0..rounds {
        if i % 50 == 0 {
            bench.purge().await;
        }
        let t = Instant::now();
        bench.submit(body).await;
        ours.push(t.elapsed());
        let t = Instant::now();
        bench.bare_put_and_send(body).await;
        bare.push(t.elapsed());
    }
    bench.purge().await;
    ours.sort();
    bare.sort();
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    println!("### Submit latency ({rounds} interleaved rounds, in process, same emulator)\n");
    println!("| path | p50 ms | p95 ms | mean ms |");
    println!("| --- | --- | --- | --- |");
    for (name, v) in [
        ("submit handler (validate + conditional PutItem + SendMessage)", &ours),
        ("bare PutItem + SendMessage", &bare),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.95)),
            ms(mean(v))
        );
    }
    println!(
        "\nRatio ours / bare: p50 {:.2}x, p95 {:.2}x, mean {:.2}x.\n",
        ms(percentile(&ours, 0.5)) / ms(percentile(&bare, 0.5)),
        ms(percentile(&ours, 0.95)) / ms(percentile(&bare, 0.95)),
        ms(mean(&ours)) / ms(mean(&bare)),
    );
}

async fn wait_all_terminal(bench: &Bench, ids: &[String], limit: Duration) {
    let started = Instant::now();
    for id in ids {
        loop {
            let item = bench
                .plain
                .dynamodb
                .get_item()
                .table_name(&bench.table)
                .key("pk", AttributeValue::S(id.clone()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            let status = item["status"].as_s().unwrap().clone();
            if status != "QUEUED" && status != "RUNNING" {
                assert_eq!(status, "SUCCEEDED", "job {id}");
                break;
            }
            assert!(started.elapsed() < limit, "jobs did not finish in {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn requests_per_job(bench: &Bench, jobs: usize) {
    let kinds = [
        (
            "report (inline CSV, 2 results)",
            r#"{"type":"report","input":{"source":{"csv":"g,v\na,1\nb,2\na,3\n"},"group_by":["g"],"values":["v"]}}"#,
        ),
        (
            "sleep 2 s (progress every 1 s)",
            r#"{"type":"sleep","input":{"seconds":2}}"#,
        ),
    ];
    println!("### AWS requests per job ({jobs} jobs of each kind, counted by an SDK interceptor)\n");
    println!("Event source = the local runtime playing the Lambda SQS event source mapping (on AWS these calls are made by Lambda, and idle long polls are included here).\n");
    for (name, body) in kinds {
        bench.counter.take();
        let mut ids = Vec::new();
        for _ in 0..jobs {
            ids.push(bench.submit(body).await);
        }
        let submit_counts = bench.counter.take();
        wait_all_terminal(bench, &ids, Duration::from_secs(300)).await;
        // One status read per job, as a client fetching its result would.
        let status = bench.function("StatusFunction").http().expect("an HTTP function");
        for id in &ids {
            let event = HttpEvent {
                route_key: "GET /jobs/{id}",
                method: "GET",
                path: &format!("/jobs/{id}"),
                query: "",
                headers: Vec::new(),
                body: None,
                path_parameters: vec![("id".into(), id.clone())],
                owner: Some("bench"),
            }
            .to_request();
            let response = status.call(event).await;
            assert_eq!(response.status_code, 200);
        }
        let rest = bench.counter.take();
        println!("**{name}**\n");
        println!("| request | per job |");
        println!("| --- | --- |");
        let mut total = 0.0;
        let mut all: BTreeMap<String, u64> = submit_counts;
        for (k, v) in rest {
            *all.entry(k).or_default() += v;
        }
        for (op, count) in &all {
            let per_job = *count as f64 / jobs as f64;
            let esm = op.ends_with("ReceiveMessage") || op.ends_with("DeleteMessageBatch");
            if !esm {
                total += per_job;
            }
            println!("| {op}{} | {per_job:.2} |", if esm { " (event source)" } else { "" });
        }
        println!("| **total made by longrun's functions** | **{total:.2}** |\n");
    }
}

/// Uploads a generated CSV of `megabytes` MiB (written to a file first and
/// streamed from it, so the bench never holds it) and answers its key and rows.
async fn upload_csv(bench: &Bench, megabytes: usize) -> (String, usize) {
    let key = format!("{}{megabytes}mb.csv", longrun_core::access::input_prefix("bench"));
    let path = PathBuf::from(format!(".local/bench-{megabytes}mb.csv"));
    let rows = {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let rows = write_csv(megabytes * 1024 * 1024, &mut file);
        std::io::Write::flush(&mut file).unwrap();
        rows
    };
    bench
        .plain
        .s3
        .put_object()
        .bucket(&bench.bucket)
        .key(&key)
        .body(aws_sdk_s3::primitives::ByteStream::from_path(&path).await.unwrap())
        .send()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&path);
    (key, rows)
}

/// The SQS batch the event source mapping would hand the worker for the
/// jobs `ids`, one message each (`message-<i>`, first receive).
fn sqs_event(ids: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::from_value(serde_json::json!({
                "messageId": format!("message-{i}"),
                "receiptHandle": format!("message-{i}"),
                "body": serde_json::to_string(&JobMessage { job_id: JobId::parse(id).unwrap(), enqueued_at: now_ms(), redrives: 0 }).unwrap(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": now_ms().to_string()},
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
            }))
            .unwrap()
        })
        .collect();
    event
}

/// One `report` job over the object `key`, run by the worker in this
/// process: its wall time and this process's peak RSS while it ran.
async fn report_job(bench: &Bench, key: &str) -> (Duration, u64) {
    let worker = bench.function("FastWorkerFunction").sqs().expect("an SQS function");
    let body = serde_json::json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount", "quantity"]}})
        .to_string();
    let id = bench.submit(&body).await;
    bench.purge().await;
    let event = sqs_event(std::slice::from_ref(&id));
    let mut context = lambda_runtime::Context::default();
    context.deadline = (now_ms() + 900_000) as u64;
    reset_peak_rss();
    let started = Instant::now();
    let response = worker.call(event, &context).await;
    let elapsed = started.elapsed();
    let peak = proc_status_kib("VmHWM");
    assert!(response.batch_item_failures.is_empty());
    wait_all_terminal(bench, std::slice::from_ref(&id), Duration::from_secs(5)).await;
    (elapsed, peak)
}

/// The floor the report job is held to: the same object read from the same
/// S3 as a stream and summed by group with the `csv` crate alone (byte
/// records, no job around it: no claim, progress, limits or results).
/// Answers its wall time and the rows it counted.
async fn bare_csv_aggregation(bench: &Bench, key: &str) -> (Duration, u64) {
    let started = Instant::now();
    let object = bench
        .plain
        .s3
        .get_object()
        .bucket(&bench.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let reader = tokio_util::io::SyncIoBridge::new(object.body.into_async_read());
    let rows = tokio::task::spawn_blocking(move || {
        let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
        let headers = csv.byte_headers().unwrap().clone();
        let index = |name: &str| headers.iter().position(|h| h == name.as_bytes()).unwrap();
        let (group, amount, quantity) = (index("region"), index("amount"), index("quantity"));
        let mut groups: std::collections::HashMap<Vec<u8>, (u64, f64, f64)> = std::collections::HashMap::new();
        let number = |cell: &[u8]| std::str::from_utf8(cell).unwrap().parse::<f64>().unwrap();
        let mut record = csv::ByteRecord::new();
        let mut rows = 0u64;
        while csv.read_byte_record(&mut record).unwrap() {
            rows += 1;
            let (a, q) = (number(&record[amount]), number(&record[quantity]));
            match groups.get_mut(&record[group]) {
                Some(sums) => {
                    sums.0 += 1;
                    sums.1 += a;
                    sums.2 += q;
                }
                None => {
                    groups.insert(record[group].to_vec(), (1, a, q));
                }
            }
        }
        assert_eq!(groups.values().map(|g| g.0).sum::<u64>(), rows);
        rows
    })
    .await
    .unwrap();
    (started.elapsed(), rows)
}

/// The report job against a bare `csv` aggregation of the same objects,
/// interleaved (3 runs each at 64 and 256 MiB, 1 of each at 1 GiB), and the
/// worker's peak RSS: constant across sizes is the point, the input is
/// never held in memory.
async fn streaming_throughput_and_memory(bench: &Bench) {
    println!(
        "### Streaming a CSV: the `report` job against a bare `csv` aggregation, and peak memory
"
    );
    println!("Both read the same object from the same S3 (the emulator) as a stream: the report job through the worker in this process (claim, progress, limits, two result objects), the bare aggregation with the `csv` crate alone (byte records, sums by group, nothing else). Medians of the runs, interleaved (which goes first alternates). Peak RSS is this process's VmHWM, reset before each job (`/proc/self/clear_refs`).\n");
    println!("| input | rows | runs | report job | bare `csv` | report / bare speed | report job peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (megabytes, runs) in [(64usize, 3usize), (256, 3), (1024, 1)] {
        let (key, rows) = upload_csv(bench, megabytes).await;
        let mut ours = Vec::new();
        let mut bare = Vec::new();
        let mut peak = 0;
        // Alternating which goes first, so neither always meets the
        // emulator just after the other.
        for run in 0..runs {
            for report_first in [run % 2 == 0, run % 2 == 1] {
                if report_first {
                    let (elapsed, peak_kib) = report_job(bench, &key).await;
                    ours.push(elapsed);
                    peak = peak.max(peak_kib);
                } else {
                    let (elapsed, counted) = bare_csv_aggregation(bench, &key).await;
                    assert_eq!(counted as usize, rows);
                    bare.push(elapsed);
                }
            }
        }
        ours.sort();
        bare.sort();
        let (ours, bare) = (ours[runs / 2], bare[runs / 2]);
        let rate = |d: Duration| megabytes as f64 / d.as_secs_f64();
        println!(
            "| {megabytes} MiB | {rows} | {runs} | {:.2} s, {:.1} MiB/s | {:.2} s, {:.1} MiB/s | **{:.2}×** | {:.1} MiB |",
            ours.as_secs_f64(),
            rate(ours),
            bare.as_secs_f64(),
            rate(bare),
            rate(ours) / rate(bare),
            peak as f64 / 1024.0,
        );
        let _ = bench
            .plain
            .s3
            .delete_object()
            .bucket(&bench.bucket)
            .key(&key)
            .send()
            .await;
    }
    println!();
}

/// Jobs/s of one worker invocation for batches of 1, 5 and 10 jobs: small
/// report jobs (inline CSV, two result objects each: the emulator's own
/// speed bounds them) and 0.2 s sleep jobs (waiting, as a job on a remote
/// service does). The worker runs a batch's messages at once
/// (`BATCH_CONCURRENCY`), so a bigger batch should give more jobs/s, where
/// one message at a time would give the same jobs/s at every size.
async fn batch_throughput(bench: &Bench) {
    println!("### Jobs per second of one worker invocation, by batch size\n");
    println!("The worker called directly with a batch of N messages; median of 5 invocations per size. With one message at a time every size would give the same jobs/s.\n");
    let worker = bench.function("FastWorkerFunction").sqs().expect("an SQS function");
    let kinds = [
        (
            "report (inline CSV, 2 results)",
            r#"{"type":"report","input":{"source":{"csv":"g,v\na,1\nb,2\na,3\n"},"group_by":["g"],"values":["v"]}}"#,
        ),
        ("sleep 0.2 s", r#"{"type":"sleep","input":{"seconds":0.2}}"#),
    ];
    for (name, body) in kinds {
        println!("**{name}**\n");
        println!("| batch size | median invocation | jobs/s | vs batch of 1 |");
        println!("| --- | --- | --- | --- |");
        let mut single_rate = None;
        for size in [1usize, 5, 10] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let mut ids = Vec::new();
                for _ in 0..size {
                    ids.push(bench.submit(body).await);
                }
                bench.purge().await;
                let event = sqs_event(&ids);
                let mut context = lambda_runtime::Context::default();
                context.deadline = (now_ms() + 900_000) as u64;
                let started = Instant::now();
                let response = worker.call(event, &context).await;
                times.push(started.elapsed().as_secs_f64());
                assert!(response.batch_item_failures.is_empty());
                wait_all_terminal(bench, &ids, Duration::from_secs(30)).await;
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let rate = size as f64 / median;
            let single = *single_rate.get_or_insert(rate);
            println!(
                "| {size} | {:.0} ms | {rate:.1} | {:.2}× |",
                median * 1000.0,
                rate / single
            );
        }
        println!();
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
        owner: Some("bench"),
    }
}

/// Cold starts of the hello world and of every function binary of the
/// template (`BENCH_BIN_DIR`, default `target/release`).
async fn cold_starts(bench: &Bench, rounds: usize) {
    let dir = PathBuf::from(std::env::var("BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()));
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

/// Writes a CSV of about `target_bytes` (orders: id, region, product,
/// amount, quantity; 5 regions) to `out`, answering its rows.
fn write_csv(target_bytes: usize, out: &mut impl std::io::Write) -> usize {
    let regions = ["eu-west", "us-east", "ap-south", "sa-east", "af-north"];
    let header = b"order_id,region,product,amount,quantity\n";
    out.write_all(header).unwrap();
    let mut written = header.len();
    let mut rows = 0usize;
    let mut state: u64 = 88172645463325252;
    let mut line = String::new();
    while written < target_bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        line.clear();
        use std::fmt::Write;
        writeln!(
            line,
            "{rows},{},p{},{}.{:02},{}",
            regions[(state % 5) as usize],
            state % 97,
            state % 10_000,
            state % 100,
            state % 50
        )
        .unwrap();
        out.write_all(line.as_bytes()).unwrap();
        written += line.len();
        rows += 1;
    }
    rows
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
    let options = Options {
        template: std::env::var("LONGRUN_TEMPLATE")
            .unwrap_or_else(|_| "template.yaml".into())
            .into(),
        stack: format!("longrun-bench-{}", now_ms()),
        parameter_overrides: [
            ("EnableSleepJob".to_owned(), "true".to_owned()),
            ("FastWorkerMaxConcurrency".to_owned(), "2".to_owned()),
            // The bench submits hundreds of jobs as one owner; with the
            // template's quota on, each job also makes two more UpdateItems
            // (reserve and give back its slot), not counted here.
            ("MaxActiveJobsPerOwner".to_owned(), "0".to_owned()),
        ]
        .into_iter()
        .collect(),
        workers: true,
        job_types: std::sync::Arc::new(longrun_jobs::standard),
        faults: BTreeMap::new(),
        // Nothing is served over HTTP here; the events function's URL only
        // has to resolve.
        base_url: Some("http://127.0.0.1:9".into()),
    };
    let stack = longrun_local::start(&options, &shared, &clients)
        .await
        .expect("local stack");
    let refs = &stack.api.deployed.refs;
    let bench = Bench {
        fast_queue_url: refs["FastQueue"].clone(),
        table: refs["JobsTable"].clone(),
        bucket: refs["JobsBucket"].clone(),
        stack,
        counter,
        plain,
    };
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
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
        other => panic!("BENCH_ONLY={other}: one of requests, batch, memory, cold-start"),
    }
}
