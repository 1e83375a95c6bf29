//! The report job's speed and memory against a bare CSV aggregation, and
//! the worker's batch throughput.

use aws_lambda_events::sqs::SqsEvent;
use longrun_core::ports::JobMessage;
use longrun_core::time::now_ms;
use longrun_core::JobId;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::*;

/// Uploads a generated CSV of `megabytes` MiB (written to a file first and
/// streamed from it, so the bench never holds it) and answers its key and rows.
pub(crate) async fn upload_csv(bench: &Bench, megabytes: usize) -> (String, usize) {
    // The bench's caller, as submit names it (`api_event`'s JWT subject).
    let owner = longrun_lambda::identity::jwt_owner(longrun_lambda::apigw::LOCAL_ISSUER, "bench");
    let key = format!("{}{megabytes}mb.csv", longrun_core::access::input_prefix(&owner));
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
pub(crate) fn sqs_event(ids: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::from_value(serde_json::json!({
                "messageId": format!("message-{i}"),
                "receiptHandle": format!("message-{i}"),
                "body": serde_json::to_string(&JobMessage { job_id: JobId::parse(id).unwrap(), enqueued_at: now_ms(), generation: 0, limit: None }).unwrap(),
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
pub(crate) async fn report_job(bench: &Bench, key: &str) -> (Duration, u64) {
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
pub(crate) async fn bare_csv_aggregation(bench: &Bench, key: &str) -> (Duration, u64) {
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
pub(crate) async fn streaming_throughput_and_memory(bench: &Bench) {
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
pub(crate) async fn batch_throughput(bench: &Bench) {
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

/// Writes a CSV of about `target_bytes` (orders: id, region, product,
/// amount, quantity; 5 regions) to `out`, answering its rows.
pub(crate) fn write_csv(target_bytes: usize, out: &mut impl std::io::Write) -> usize {
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
