//! Promotion end to end: a normal job that runs out of the fast worker's
//! time goes on in the slow queue and finishes there, counted by
//! `JobsPromoted`; with `PromoteToSlowQueue=false` it continues on the fast
//! queue instead.

use std::time::{Duration, Instant};

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

use crate::metrics::total;

/// A fast worker of 5 s, less the 3 s safety margin: each fast run has
/// about 2 s, so a 4 s job cannot finish in one.
const SHORT_FAST_WORKER: &str = "FastWorkerTimeout=5";

fn emf(runtime: &LocalRuntime) -> Vec<Value> {
    runtime
        .log_events()
        .into_iter()
        .filter(|e| e.get("_aws").is_some())
        .collect()
}

/// `metric` by job type and queue, once the runtime has written it (EMF
/// lines go out every second), or what there is after 10 s.
async fn counted(runtime: &LocalRuntime, metric: &str, queue: &str, at_least: f64) -> f64 {
    let started = Instant::now();
    loop {
        let n = total(&emf(runtime), metric, &[("JobType", "sleep"), ("Queue", queue)]).0;
        if n >= at_least || started.elapsed() > Duration::from_secs(10) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_job_out_of_fast_worker_time_finishes_on_the_slow_queue_unless_promotion_is_off() {
    let mut runtime = LocalRuntime::start("longrun-promote", &["--parameter-overrides", SHORT_FAST_WORKER]).await;
    let stack = Stack::local(&runtime).await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 4}}))
        .await;
    let queued = stack.job(&id).await;
    assert_eq!(queued["queue"], "fast", "{queued}");
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["queue"].as_str(),
            done["attempts"].as_u64()
        ),
        (Some("SUCCEEDED"), Some("slow"), Some(1)),
        "moved to the slow queue within its one attempt: {done}"
    );
    assert_eq!(
        counted(&runtime, "JobsPromoted", "fast", 1.0).await,
        1.0,
        "one move, counted"
    );
    // The metric is written just after the end the view shows: wait for it.
    assert_eq!(
        counted(&runtime, "JobsSucceeded", "slow", 1.0).await,
        1.0,
        "it ended on the slow queue"
    );

    // Switched off: the same job continues on the fast queue, from its
    // checkpoints, and is never moved.
    runtime
        .restart_with(&[
            "--parameter-overrides",
            &format!("{SHORT_FAST_WORKER} PromoteToSlowQueue=false"),
        ])
        .await;
    let stack = Stack::local(&runtime).await;
    let kept = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 4}}))
        .await;
    let done = stack.wait_terminal(&kept, Duration::from_secs(60)).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["queue"].as_str(),
            done["attempts"].as_u64()
        ),
        (Some("SUCCEEDED"), Some("fast"), Some(1)),
        "{done}"
    );
    assert!(
        counted(&runtime, "Continuations", "fast", 2.0).await >= 2.0,
        "it continued on the fast queue"
    );
    assert_eq!(
        counted(&runtime, "JobsPromoted", "fast", 2.0).await,
        1.0,
        "no second move"
    );
}
