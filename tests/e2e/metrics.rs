//! Metrics end to end: a job's life produces the expected CloudWatch
//! Embedded Metric Format lines on the runtime's stdout, as Lambda would
//! write them to CloudWatch Logs (which turns them into metrics).

use std::time::{Duration, Instant};

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

/// The sum of `metric` over every EMF document whose dimension set is
/// exactly `dimensions` (names and values), counting each value of a
/// distribution; and how many values there were.
pub(crate) fn total(docs: &[Value], metric: &str, dimensions: &[(&str, &str)]) -> (f64, usize) {
    let mut sum = 0.0;
    let mut count = 0;
    for doc in docs {
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        let names: Vec<&str> = declared["Dimensions"][0]
            .as_array()
            .map(|d| d.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut wanted: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
        let mut found = names.clone();
        wanted.sort();
        found.sort();
        if wanted != found || dimensions.iter().any(|(k, v)| doc[*k] != *v) {
            continue;
        }
        if !declared["Metrics"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["Name"] == metric))
        {
            continue;
        }
        match &doc[metric] {
            Value::Number(n) => {
                sum += n.as_f64().unwrap_or(0.0);
                count += 1;
            }
            Value::Array(values) => {
                sum += values.iter().filter_map(Value::as_f64).sum::<f64>();
                count += values.len();
            }
            _ => {}
        }
    }
    (sum, count)
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_jobs_life_produces_the_expected_emf_metrics() {
    let runtime = LocalRuntime::start("longrun-metrics", &[]).await;
    let stack = Stack::local(&runtime).await;
    // Two seconds: longer than a heartbeat (1 s here), so a run time
    // measured from the last heartbeat instead of the claim would show.
    let ok = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 2}}))
        .await;
    let bad = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0, "fail": "permanent"}}))
        .await;
    assert_eq!(
        stack
            .submit(&json!({"type": "no-such-type", "input": {}}), None)
            .await
            .status,
        422
    );
    assert_eq!(
        stack.wait_terminal(&ok, Duration::from_secs(60)).await["status"],
        "SUCCEEDED"
    );
    assert_eq!(
        stack.wait_terminal(&bad, Duration::from_secs(60)).await["status"],
        "FAILED"
    );

    // The runtime writes what was recorded every second.
    let started = Instant::now();
    let docs = loop {
        let docs: Vec<Value> = runtime
            .log_events()
            .into_iter()
            .filter(|e| e.get("_aws").is_some())
            .collect();
        let written = total(&docs, "JobsFailed", &[]).0 >= 1.0
            && total(&docs, "JobsSucceeded", &[]).0 >= 1.0
            && total(&docs, "RunMs", &[]).1 >= 2;
        if written || started.elapsed() > Duration::from_secs(15) {
            break docs;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(!docs.is_empty(), "no EMF lines in the runtime's output");
    assert!(docs
        .iter()
        .all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "longrun"));
    let by_type = [("JobType", "sleep"), ("Queue", "fast")];
    assert_eq!(total(&docs, "JobsSubmitted", &[]).0, 2.0);
    assert_eq!(total(&docs, "JobsSubmitted", &by_type).0, 2.0);
    assert_eq!(total(&docs, "JobsStarted", &by_type).0, 2.0);
    assert_eq!(total(&docs, "JobsSucceeded", &by_type).0, 1.0);
    assert_eq!(total(&docs, "JobsFailed", &[]).0, 1.0);
    assert_eq!(total(&docs, "JobsCancelled", &[]).0, 0.0);
    assert_eq!(total(&docs, "SubmitsRejected", &[("Reason", "422")]).0, 1.0);
    let (_, waits) = total(&docs, "QueueWaitMs", &[("Queue", "fast")]);
    assert_eq!(waits, 2, "one queue wait per first start");
    let (run_ms, runs) = total(&docs, "RunMs", &[("JobType", "sleep")]);
    assert_eq!(runs, 2, "one run each");
    assert!(
        run_ms >= 1_900.0,
        "the 2 s job's run counts from its claim: {run_ms} ms in all"
    );
}
