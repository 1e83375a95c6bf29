//! When work asked for a time starts: the lateness (`started_at` − the time
//! asked for) of `run_at` jobs, sent at submit with a delay or by the
//! reconciler once near, and of recurring schedules' ticks (`overlap:
//! allow`, made ahead as `run_at` jobs; `skip`, decided at the tick). On a
//! stack of its own whose reconciler and scheduler run every second (the
//! template's default is a minute: a `skip` tick on AWS is late by up to
//! that period, the other paths do not depend on it).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_aws::AwsClients;
use longrun_core::time::{now_ms, rfc3339};
use longrun_core::JobId;
use longrun_lambda::apigw::HttpEvent;
use longrun_local::LocalStack;

use crate::api_event;

/// Jobs of each `run_at` kind, and ticks of each schedule.
const SAMPLES: usize = 20;
/// The schedules' rate, seconds.
const TICK_SECONDS: i64 = 2;

async fn call(stack: &LocalStack, route_key: &str, path: &str, body: &str) -> serde_json::Value {
    let function = stack
        .functions
        .iter()
        .find(|f| f.spec.logical_id == "SubmitFunction")
        .and_then(|f| f.http())
        .expect("the submit function");
    let method = route_key.split(' ').next().unwrap();
    let event = HttpEvent {
        body: Some(body.as_bytes()),
        ..api_event(route_key, method, path, None)
    };
    let response = function.call(event.to_request()).await;
    let text = match response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => text,
        other => panic!("unexpected body {other:?}"),
    };
    assert!(
        matches!(response.status_code, 201 | 202),
        "{route_key}: {} {text}",
        response.status_code
    );
    serde_json::from_str(&text).unwrap()
}

/// The job's `started_at` once it has one, waiting up to `limit`.
async fn started_at(clients: &AwsClients, table: &str, id: &str, limit: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let item = clients
            .dynamodb
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item;
        if let Some(started) = item
            .as_ref()
            .and_then(|i| i.get("started_at"))
            .and_then(|v| v.as_n().ok())
        {
            return started.parse().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} did not start in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row(name: &str, mut lateness_ms: Vec<i64>) {
    lateness_ms.sort();
    let at = |p: f64| lateness_ms[((lateness_ms.len() - 1) as f64 * p).round() as usize];
    let early = lateness_ms.iter().filter(|l| **l < 0).count();
    println!(
        "| {name} | {} | {} | {} | {} | {} | {early} |",
        lateness_ms.len(),
        at(0.0),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

pub(crate) async fn start_lateness(shared: &aws_config::SdkConfig, clients: &AwsClients) {
    let overrides = [
        ("EnableSleepJob", "true"),
        ("MaxActiveJobsPerOwner", "0"),
        ("ScheduleLookaheadSeconds", "5"),
        ("ReconcilerSchedule", "rate(1 second)"),
        ("SchedulerSchedule", "rate(1 second)"),
        ("ScheduleMinIntervalSeconds", "1"),
    ];
    let options = crate::stack_options(format!("longrun-bench-time-{}", now_ms()), &overrides);
    let stack = longrun_local::start(&options, shared, clients)
        .await
        .expect("local stack");
    let table = stack.api.deployed.refs["JobsTable"].clone();
    let sleep = r#"{"type":"sleep","input":{"seconds":0}}"#;
    let job_at = |at: i64| {
        format!(
            r#"{{"type":"sleep","input":{{"seconds":0}},"run_at":"{}"}}"#,
            rfc3339(at)
        )
    };

    let now = now_ms();
    // Two schedules, their first ticks on whole seconds a few seconds out.
    let first_tick = (now / 1000 + 4) * 1000;
    let mut schedules = Vec::new();
    for (overlap, offset) in [("allow", 0), ("skip", 1000)] {
        let body = format!(
            r#"{{"rate":"{TICK_SECONDS} seconds","overlap":"{overlap}","start_at":"{}","job":{sleep}}}"#,
            rfc3339(first_tick + offset)
        );
        let view = call(&stack, "POST /schedules", "/schedules", &body).await;
        schedules.push((overlap, view["id"].as_str().unwrap().to_owned(), first_tick + offset));
    }
    // run_at jobs: within the look-ahead (sent at submit, delayed), and
    // beyond it (sent by the reconciler), spread over a few seconds.
    let mut jobs: Vec<(&str, String, i64)> = Vec::new();
    for i in 0..SAMPLES as i64 {
        for (kind, base) in [("submit", 2_000), ("reconciler", 9_000)] {
            let at = now_ms() + base + i * 137;
            let view = call(&stack, "POST /jobs", "/jobs", &job_at(at)).await;
            jobs.push((kind, view["id"].as_str().unwrap().to_owned(), at));
        }
    }
    let limit = Duration::from_secs(120);
    let mut by_kind: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (kind, id, at) in &jobs {
        let started = started_at(clients, &table, id, limit).await;
        by_kind.entry(kind).or_default().push(started - at);
    }
    for (overlap, id, first) in &schedules {
        for k in 0..SAMPLES as i64 {
            let tick = first + k * TICK_SECONDS * 1000;
            let job = JobId::for_schedule_tick(id, tick);
            let started = started_at(clients, &table, job.as_str(), limit).await;
            by_kind.entry(overlap).or_default().push(started - tick);
        }
    }
    for poller in &stack.pollers {
        poller.abort();
    }
    println!("### Start lateness: jobs at a time and schedule ticks (`started_at` − the time asked for, ms)\n");
    println!(
        "A stack of its own with the reconciler and the scheduler every second and a 5 s look-ahead; {SAMPLES} \
         of each, `sleep 0` jobs. On AWS the scheduler runs every \
         `SchedulerSchedule` (a minute): an `overlap: skip` tick waits for the next pass, up to that long; \
         the other rows do not depend on the pass period.\n"
    );
    println!("| what | n | min | p50 | p90 | max | early |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let names = [
        ("submit", "`run_at` within the look-ahead (sent at submit, delayed)"),
        ("reconciler", "`run_at` beyond the look-ahead (sent by the reconciler)"),
        ("allow", "schedule tick, `overlap: allow` (made ahead)"),
        (
            "skip",
            "schedule tick, `overlap: skip` (decided at the tick; pass every 1 s)",
        ),
    ];
    for (kind, name) in names {
        row(name, by_kind.remove(kind).unwrap_or_default());
    }
    println!();
}
