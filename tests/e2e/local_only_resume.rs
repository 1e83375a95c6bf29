//! A long report killed mid-read: its worker is `kill -9`ed after a
//! checkpoint, the job is taken over, and the report goes on from that
//! checkpoint (not from the start) to the summary an uninterrupted run
//! writes. Reads are slowed (`SlowReads`) so the report takes seconds on
//! any machine, and checkpoints come every second.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

/// 1 MB/s: the 4 MB report reads for about 4 s.
const SLOW: [&str; 6] = [
    "--fault",
    "FastWorkerFunction:SlowReads=1000000",
    "--fault",
    "SlowWorkerFunction:SlowReads=1000000",
    "--parameter-overrides",
    "ReportCheckpointSeconds=1",
];

/// About 4 MB of CSV over 50 groups, with quoted fields and CRLF lines.
fn sales() -> Vec<u8> {
    let mut text = b"region,note,amount\r\n".to_vec();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..60_000u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let line = format!(
            "r{},\"note, {i} with \"\"quotes\"\"\",{}.{:02}\r\n",
            state % 50,
            state % 10_000,
            (state >> 20) % 100
        );
        text.extend_from_slice(line.as_bytes());
    }
    text
}

/// The checkpoint the job's record holds now, if any.
async fn checkpoint(stack: &Stack, id: &str) -> Option<Value> {
    match stack.item(id).await.get("checkpoint") {
        Some(AttributeValue::S(text)) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

async fn summary(stack: &Stack, view: &Value) -> Vec<u8> {
    let result = view["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "summary.json"))
        .unwrap_or_else(|| panic!("no summary.json in {view}"));
    stack.download(result["url"].as_str().unwrap()).await
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_report_killed_mid_read_resumes_from_its_checkpoint_with_the_same_summary() {
    let mut runtime = LocalRuntime::start("longrun-resume", &SLOW).await;
    let mut stack = Stack::local(&runtime).await;
    let csv = sales();
    let size = csv.len() as u64;
    let key = stack.upload("sales.csv", csv).await;
    let report =
        json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount"]}});
    let id = stack.submit_ok(&report).await;

    // Killed once a checkpoint stands partway in.
    let started = Instant::now();
    let saved = loop {
        if let Some(saved) = checkpoint(&stack, &id).await {
            if saved["offset"].as_u64().unwrap_or(0) > 0 {
                break saved;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoint: {}",
            stack.job(&id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let saved_at = saved["offset"].as_u64().unwrap();
    assert!(saved_at < size, "saved before the end: {saved}");
    assert!(saved["etag"].is_string(), "the version read is kept: {saved}");
    runtime.kill();
    runtime.restart().await;
    stack.api = runtime.api.clone();

    let done = stack.wait_terminal(&id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    // Taken over after the kill, with no attempt spent. Once, usually; a
    // lease extension held up by a busy emulator (other tests' bursts) can
    // let a second run take over, which is the protocol working: every
    // run resumes from the checkpoint it finds, and the summary must match.
    assert_eq!(done["attempts"].as_u64(), Some(1), "no attempt spent: {done}");
    assert!(
        done["takeovers"].as_u64().is_some_and(|n| n >= 1),
        "taken over after the kill: {done}"
    );
    let resumed_from: Vec<u64> = runtime
        .log_events()
        .iter()
        .filter(|e| e["message"] == "the report resumes from its checkpoint" && e.to_string().contains(id.as_str()))
        .filter_map(|e| e["offset"].as_u64())
        .collect();
    assert!(
        resumed_from.iter().any(|&at| at >= saved_at),
        "the run after the kill went on from the checkpoint at {saved_at} or later, not from the start: {resumed_from:?}"
    );

    // The same report uninterrupted writes the same bytes.
    let whole = stack.submit_ok(&report).await;
    let whole = stack.wait_terminal(&whole, Duration::from_secs(120)).await;
    assert_eq!(whole["status"], "SUCCEEDED", "{whole}");
    let (resumed, uninterrupted) = (summary(&stack, &done).await, summary(&stack, &whole).await);
    assert!(resumed == uninterrupted, "the summaries differ");
    let parsed: Value = serde_json::from_slice(&resumed).unwrap();
    assert_eq!(parsed["rows"], 60_000, "{parsed}");
}
