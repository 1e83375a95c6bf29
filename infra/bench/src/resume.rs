//! (`BENCH_ONLY=resume`, its own section) A large report run as one
//! invocation against the same report cut into short invocations, as a
//! worker whose time runs out continues it from its checkpoints: the same
//! summary bytes (asserted), how many invocations, their overhead in wall
//! time, and the worker's peak RSS.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_core::time::now_ms;

use crate::throughput::{sqs_event, upload_csv};
use crate::*;

/// Of a short invocation's Lambda time, what is not for reading: the
/// worker's 3 s safety margin and the report's 1 s lead before it.
const INVOCATION_OVERHEAD_MS: i64 = 4_000;
/// Time a resumed run waits for the first bytes of its ranged read (the
/// emulator reads the object up to the offset first; S3 answers in tens of
/// milliseconds).
const FIRST_BYTE_ALLOWANCE_MS: i64 = 1_500;
/// Into how many runs' reading the short invocations cut the report.
const RUNS: i64 = 4;

/// A short invocation for a report that reads for `whole` in one: long
/// enough for a quarter of its reading, after its first byte.
fn short_invocation_ms(whole: Duration) -> i64 {
    INVOCATION_OVERHEAD_MS + FIRST_BYTE_ALLOWANCE_MS + whole.as_millis() as i64 / RUNS
}

/// How one report went: its time, invocations, peak RSS (KiB) and summary.
struct Ran {
    elapsed: Duration,
    invocations: usize,
    peak_kib: u64,
    summary: Vec<u8>,
}

/// The job's record, read consistently.
async fn record(bench: &Bench, id: &str) -> std::collections::HashMap<String, AttributeValue> {
    bench
        .plain
        .dynamodb
        .get_item()
        .table_name(&bench.table)
        .key("pk", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

/// One report job over `key`, invoked with `invocation_ms` of Lambda time
/// each time until it ends (each continuation waits out its 1 s delay, as
/// its message would).
async fn report(bench: &Bench, key: &str, invocation_ms: i64) -> Ran {
    let worker = bench.function("FastWorkerFunction").sqs().expect("an SQS function");
    let body = serde_json::json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount", "quantity"]}})
        .to_string();
    let id = bench.submit(&body).await;
    reset_peak_rss();
    let started = Instant::now();
    let mut invocations = 0;
    let item = loop {
        bench.purge().await;
        let mut context = lambda_runtime::Context::default();
        context.deadline = (now_ms() + invocation_ms) as u64;
        invocations += 1;
        let response = worker.call(sqs_event(std::slice::from_ref(&id)), &context).await;
        assert!(response.batch_item_failures.is_empty());
        let item = record(bench, &id).await;
        match item["status"].as_s().unwrap().as_str() {
            "QUEUED" => tokio::time::sleep(Duration::from_millis(1_050)).await,
            "SUCCEEDED" => break item,
            other => panic!("the report ended {other}: {item:?}"),
        }
        assert!(invocations < 1_000, "the report must get on");
    };
    let elapsed = started.elapsed();
    let peak_kib = proc_status_kib("VmHWM");
    let results: Vec<longrun_core::ResultObject> = serde_json::from_str(item["results"].as_s().unwrap()).unwrap();
    let summary = results.iter().find(|r| r.name == "summary.json").unwrap();
    let object = bench
        .plain
        .s3
        .get_object()
        .bucket(&bench.bucket)
        .key(&summary.key)
        .send()
        .await
        .unwrap();
    let summary = object.body.collect().await.unwrap().into_bytes().to_vec();
    Ran {
        elapsed,
        invocations,
        peak_kib,
        summary,
    }
}

/// The table: 256 MiB and 1 GiB, each as one invocation and in short ones.
pub(crate) async fn report_through_continuations(bench: &Bench) {
    println!("A `report` job run by the worker in this process, against the same emulator: once in one invocation (900 s), once in short invocations, each {:.1} s of safety margin and checkpoint lead, {:.1} s for the ranged read's first bytes, and a {RUNS}th of the one invocation's time for reading; each then saves its checkpoint and continues in the next. The summaries are asserted byte-identical. Wall time includes the 1 s each continuation waits before its next claim. Peak RSS is this process's VmHWM, reset before each job.\n", INVOCATION_OVERHEAD_MS as f64 / 1000.0, FIRST_BYTE_ALLOWANCE_MS as f64 / 1000.0);
    println!("| input | rows | one invocation | short invocation | short invocations | invocations | short / one (wall) | peak RSS one / short |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for megabytes in [256usize, 1024] {
        let (key, rows) = upload_csv(bench, megabytes).await;
        let whole = report(bench, &key, 900_000).await;
        let short = short_invocation_ms(whole.elapsed);
        let resumed = report(bench, &key, short).await;
        assert_eq!(whole.invocations, 1);
        assert!(
            resumed.summary == whole.summary,
            "the resumed report's summary differs at {megabytes} MiB"
        );
        println!(
            "| {megabytes} MiB | {rows} | {:.1} s | {:.1} s | {:.1} s | {} | **{:.2}×** | {:.1} / {:.1} MiB |",
            whole.elapsed.as_secs_f64(),
            short as f64 / 1000.0,
            resumed.elapsed.as_secs_f64(),
            resumed.invocations,
            resumed.elapsed.as_secs_f64() / whole.elapsed.as_secs_f64(),
            whole.peak_kib as f64 / 1024.0,
            resumed.peak_kib as f64 / 1024.0,
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
