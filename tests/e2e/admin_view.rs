//! `longrun-admin`'s operator view — `queues`, `dlq`, `jobs` with `--json` —
//! against a local runtime of this test's own, with its workers paused so
//! that nothing moves while it looks: the submitted jobs wait in the fast
//! queue, and a poison message waits in the fast queue's dead-letter queue
//! (the dead-letter function is paused too).

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

/// Runs `longrun-admin --local <runtime> ARGS --json`; its parsed output.
fn admin(runtime: &LocalRuntime, args: &[&str]) -> Value {
    let bin = std::env::var("LONGRUN_ADMIN_BIN").expect("LONGRUN_ADMIN_BIN");
    let output = std::process::Command::new(bin)
        .args(["--local", &runtime.api])
        .args(args)
        .arg("--json")
        .output()
        .expect("run longrun-admin");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "longrun-admin {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("longrun-admin {args:?} printed no JSON ({e}): {stdout}"))
}

/// The entry of `queues` whose `field` is `value`.
fn queue<'a>(report: &'a Value, field: &str, value: &str) -> &'a Value {
    report["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q[field] == value)
        .unwrap_or_else(|| panic!("no queue with {field} = {value}: {report}"))
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn the_operator_view_shows_queues_dead_letters_and_jobs_without_disturbing_them() {
    let runtime = LocalRuntime::start("longrun-admin-view", &["--no-workers"]).await;
    let stack = Stack::local(&runtime).await;
    let mut submitted = Vec::new();
    for _ in 0..3 {
        submitted.push(
            stack
                .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0.1}}))
                .await,
        );
    }
    submitted.sort();
    let dead_letters = stack.local_ref("FastDeadLetterQueue").await;
    let poison = format!("not a job message {}", uuid::Uuid::new_v4());
    stack.send_message(&dead_letters, &poison).await;

    // Every queue, with its counts; the fast queue holds the three jobs and
    // its oldest job's age comes from the table.
    let queues = admin(&runtime, &["queues"]);
    let fast = queue(&queues, "name", "fast");
    assert_eq!(fast["kind"], "work", "{fast}");
    assert_eq!(fast["dead_letter_queue"], "FastDeadLetterQueue", "{fast}");
    assert_eq!(
        fast["visible"].as_u64().unwrap() + fast["delayed"].as_u64().unwrap(),
        submitted.len() as u64,
        "{fast}"
    );
    let oldest = &fast["oldest_queued"];
    assert!(oldest["age_seconds"].as_i64().expect("an age") >= 0, "{oldest}");
    assert!(oldest["age_ms"].as_i64().expect("an age") >= 0, "{oldest}");
    assert!(
        submitted.iter().any(|id| oldest["job_id"] == id.as_str()),
        "the oldest is one of ours: {oldest}"
    );
    assert!(
        queues["age_method"].as_str().unwrap().contains("jobs table"),
        "says how the age is obtained: {queues}"
    );
    for logical_id in ["FastDeadLetterQueue", "SlowDeadLetterQueue", "WebhookDeadLetterQueue"] {
        assert_eq!(queue(&queues, "logical_id", logical_id)["kind"], "dead-letter");
    }
    assert_eq!(queue(&queues, "logical_id", "WebhookQueue")["kind"], "webhook");
    assert_eq!(queue(&queues, "logical_id", "FastDeadLetterQueue")["visible"], 1);

    // The dead-letter queue's contents, twice: reading takes nothing away.
    for round in 1..=2 {
        let dlq = admin(&runtime, &["dlq", "FastDeadLetterQueue"]);
        let listed = dlq["dead_letter_queues"].as_array().expect("dead_letter_queues");
        assert_eq!(listed.len(), 1, "{dlq}");
        assert_eq!(listed[0]["queue"], "FastDeadLetterQueue");
        let messages = listed[0]["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1, "round {round}: {dlq}");
        let message = &messages[0];
        assert_eq!(message["poison_body"], poison.as_str(), "round {round}: {message}");
        assert!(message["job_id"].is_null() && message["job"].is_null(), "{message}");
        assert!(message["sent_at"].is_string(), "{message}");
        assert!(message["receive_count"].as_u64().unwrap() >= round, "{message}");
    }
    // Naming the queue it catches dead letters of finds it too.
    let by_source = admin(&runtime, &["dlq", "fast", "--limit", "5"]);
    assert_eq!(by_source["dead_letter_queues"][0]["queue"], "FastDeadLetterQueue");
    // Still there, visible (not held) after the reads; the work queue untouched.
    let after = admin(&runtime, &["queues"]);
    let dead = queue(&after, "logical_id", "FastDeadLetterQueue");
    assert_eq!(
        (dead["visible"].as_u64(), dead["in_flight"].as_u64()),
        (Some(1), Some(0)),
        "{dead}"
    );
    let fast = queue(&after, "name", "fast");
    assert_eq!(fast["in_flight"], 0, "nothing was received from the work queue: {fast}");

    // The owner's QUEUED jobs are exactly ours; the counts include them.
    let mine = admin(&runtime, &["jobs", "--status", "QUEUED", "--owner", &stack.owner_key()]);
    let mut listed: Vec<String> = mine["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, submitted, "{mine}");
    assert!(mine["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["owner"] == stack.owner_key().as_str() && j["status"] == "QUEUED" && j["type"] == "sleep"));
    assert_eq!(
        (mine["counts"]["QUEUED"].as_u64(), mine["matching"].as_u64()),
        (Some(3), Some(3))
    );
    let all = admin(&runtime, &["jobs"]);
    assert!(
        all["counts"]["QUEUED"].as_u64().unwrap() >= submitted.len() as u64,
        "{all}"
    );
    assert!(all["total"].as_u64().unwrap() >= submitted.len() as u64, "{all}");
    assert_eq!(all["counts"]["RUNNING"], 0, "workers are paused: {all}");
    assert!(all["jobs"].is_null(), "no list without --status: {all}");
}
