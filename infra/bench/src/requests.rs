//! What a submit costs: its latency against the floor of a bare put and
//! send, and the requests each job makes end to end.

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_lambda::apigw::HttpEvent;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::*;

pub(crate) async fn submit_latency(bench: &Bench, rounds: usize) {
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

pub(crate) async fn wait_all_terminal(bench: &Bench, ids: &[String], limit: Duration) {
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

pub(crate) async fn requests_per_job(bench: &Bench, jobs: usize) {
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
                jwt_claims: HttpEvent::claims_of(Some("bench")),
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
