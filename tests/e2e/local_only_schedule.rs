//! Jobs at a time further away than the look-ahead: no message at submit,
//! sent by the reconciler once the start is near, delayed to it; a cancel
//! before the start ends the job for good.

use std::time::Duration;

use longrun_core::time::{now_ms, parse_rfc3339, rfc3339};
use longrun_e2e::{LocalRuntime, Stack};
use serde_json::json;

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_job_at_a_time_starts_at_it_not_before_and_one_cancelled_before_never_does() {
    // A look-ahead of 4 s (the reconciler runs every 2 s in tests), so a
    // start 12 s away is sent by the reconciler, not at submit.
    let runtime = LocalRuntime::start(
        "longrun-schedule",
        &[
            "--parameter-overrides",
            "ScheduleLookaheadSeconds=4 MaxActiveJobsPerOwner=0",
        ],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let start = now_ms() + 12_000;
    let body = |seconds: f64| json!({"type": "sleep", "input": {"seconds": seconds}, "run_at": rfc3339(start)});
    let id = stack.submit_ok(&body(0.2)).await;
    let cancelled = stack.submit_ok(&body(0.0)).await;
    let view = stack.job(&id).await;
    assert_eq!(
        (view["status"].as_str(), view["run_at"].as_str()),
        (Some("QUEUED"), Some(rfc3339(start).as_str()))
    );
    let answer = stack.cancel(&cancelled).await;
    assert!(matches!(answer.status, 200 | 202), "{answer:?}");
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let started = parse_rfc3339(done["started_at"].as_str().unwrap()).unwrap();
    println!(
        "a job asked to start at {start} started {} ms after it",
        started - start
    );
    assert!(started >= start, "never early: started {started}, asked {start}");
    assert!(
        started - start < 10_000,
        "sent before its start by the reconciler: {}",
        started - start
    );
    let sent_by_reconciler = runtime
        .log_events()
        .iter()
        .filter(|e| e["message"] == "sent a job whose start is near, delayed to it")
        .count();
    assert!(sent_by_reconciler >= 1, "the reconciler sent it");
    let view = stack.job(&cancelled).await;
    assert_eq!(
        (view["status"].as_str(), view["started_at"].as_str()),
        (Some("CANCELLED"), None),
        "{view}"
    );
}
