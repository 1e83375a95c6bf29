//! Per-key limits end to end: jobs submitted under a limit of two never run
//! more than two at once, none spends an attempt waiting, and a submit that
//! names a limit the deployment lacks is refused.

use std::time::Duration;

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::json;

/// Jobs submitted under the limit, and workers that could run them all at once.
const JOBS: usize = 8;
const WORKERS: usize = 4;

/// The most runs that overlapped at one time, from their start and end.
fn most_at_once(runs: &[(i64, i64)]) -> usize {
    runs.iter()
        .map(|(start, _)| runs.iter().filter(|(s, e)| s <= start && start < e).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn jobs_under_a_limit_of_two_never_run_three_at_once_and_spend_no_attempt_waiting() {
    let runtime = LocalRuntime::start(
        "longrun-limits",
        &[
            "--parameter-overrides",
            &format!(
                "Limits=pair:concurrency=2 MaxActiveJobsPerOwner=0 FastWorkerMaxConcurrency={WORKERS} FastWorkerBatchSize=1"
            ),
        ],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let refused = stack
        .submit(
            &json!({"type": "sleep", "input": {"seconds": 0}, "limit": "nope"}),
            None,
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(
        refused.body["errors"][0]["field"], "limit",
        "names the field: {}",
        refused.body
    );
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        let body = json!({"type": "sleep", "input": {"seconds": 1}, "limit": "pair"});
        ids.push(stack.submit_ok(&body).await);
    }
    for id in &ids {
        let done = stack.wait_terminal(id, Duration::from_secs(120)).await;
        assert_eq!(
            (
                done["status"].as_str(),
                done["attempts"].as_u64(),
                done["limit"].as_str()
            ),
            (Some("SUCCEEDED"), Some(1), Some("pair")),
            "{done}"
        );
    }
    let events = runtime.log_events();
    let waits = events
        .iter()
        .filter(|e| e["message"] == "no room under the job's limit; it waits")
        .count();
    // Each run's window, from its claim until its handler stopped (a run
    // that lost its lease to a slow store is one run; the job's takeover
    // another): what the limit bounds. The job view's started_at and
    // finished_at would span every run of a job and its end's write.
    let runs: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| e["message"] == "run stopped")
        .map(|e| (e["claimed_at"].as_i64().unwrap(), e["stopped_at"].as_i64().unwrap()))
        .collect();
    assert!(runs.len() >= JOBS, "a window per run: {runs:?}");
    println!(
        "{JOBS} jobs under a limit of 2 on {WORKERS} workers: {waits} waits, at most {} at once",
        most_at_once(&runs)
    );
    assert!(waits > 0, "with {WORKERS} workers, some job found the limit full");
    assert_eq!(most_at_once(&runs), 2, "two at once, never more: {runs:?}");
}
