//! A backlog is not mistaken for lost messages: the reconciler leaves jobs
//! alone while the messages in their queue explain the wait.

use std::time::{Duration, Instant};

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::json;

/// Jobs in the backlog, and the fast workers draining it.
const JOBS: usize = 60;
const WORKERS: usize = 2;

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_backlog_behind_busy_workers_gets_fewer_than_half_a_resend_per_job() {
    // One message per invocation, two invocations at once (the least the
    // SQS event source allows), a grace of 5 s and a reconciler every 2 s:
    // each 1 s job waits up to half a minute (six graces; more on a busy
    // machine, within the 20 graces a backlog may explain).
    let runtime = LocalRuntime::start(
        "longrun-backlog",
        &[
            "--parameter-overrides",
            &format!(
                "MaxActiveJobsPerOwner=0 FastWorkerMaxConcurrency={WORKERS} FastWorkerBatchSize=1 EnqueueGraceSeconds=5"
            ),
        ],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(
            stack
                .submit_ok(&json!({"type": "sleep", "input": {"seconds": 1}}))
                .await,
        );
    }
    let started = Instant::now();
    for id in &ids {
        let done = stack.wait_terminal(id, Duration::from_secs(120)).await;
        assert_eq!(
            (done["status"].as_str(), done["queue"].as_str()),
            (Some("SUCCEEDED"), Some("fast")),
            "{done}"
        );
    }
    let drained = started.elapsed();
    let resends = runtime
        .log_events()
        .iter()
        .filter(|e| e["message"] == "re-enqueued an overdue job")
        .count();
    let messages = JOBS + resends;
    println!("backlog of {JOBS} drained in {drained:?}: {messages} messages ({resends} resends)");
    assert!(
        drained > Duration::from_secs(5 * 4),
        "the backlog outlasted several graces ({drained:?}), or this shows nothing"
    );
    assert!(
        messages * 2 <= JOBS * 3,
        "{messages} messages for {JOBS} jobs: at most 1.5 per job"
    );
}
