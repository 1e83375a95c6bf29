//! The `longrun` CLI as a user runs it, against the test runtime: a report
//! uploaded, submitted and waited for with its results on disk (exit 0); a
//! failing job's exit code; `--json` output that parses; usage and
//! connection errors with their own codes.

use std::process::Output;

use longrun_e2e::Stack;
use serde_json::Value;

fn cli(stack: &Stack, args: &[&str]) -> Output {
    let bin = std::env::var("LONGRUN_CLI_BIN")
        .expect("LONGRUN_CLI_BIN is not set: run the end-to-end tests through `make test`");
    std::process::Command::new(bin)
        .args(args)
        .env("LONGRUN_API_URL", &stack.api)
        .env("LONGRUN_TOKEN", stack.token())
        .output()
        .expect("run longrun")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn submit_with_an_upload_and_wait_writes_the_results_and_exits_0() {
    let stack = Stack::from_env().await;
    let dir = std::env::temp_dir().join(format!("longrun-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("sales.csv");
    std::fs::write(&input, "region,amount\neu,10\nus,5\neu,2.5\n").unwrap();
    let out = dir.join("results");
    let output = cli(
        &stack,
        &[
            "submit",
            "report",
            "--input",
            input.to_str().unwrap(),
            "--group-by",
            "region",
            "--values",
            "amount",
            "--wait",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let csv = std::fs::read_to_string(out.join("summary.csv")).expect("summary.csv downloaded");
    assert!(csv.starts_with("region,rows,amount_count,amount_sum"), "{csv}");
    assert!(csv.contains("eu,2,2,12.5"), "{csv}");
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rows"], 3);
    assert!(text(&output.stdout).contains("wrote"), "{}", text(&output.stdout));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_failing_job_exits_3_and_json_output_parses() {
    let stack = Stack::from_env().await;
    let output = cli(
        &stack,
        &[
            "--json",
            "submit",
            "sleep",
            "--input-json",
            r#"{"seconds": 0, "fail": "permanent"}"#,
            "--wait",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    let view: Value = serde_json::from_slice(&output.stdout).expect("--json prints the job view");
    assert_eq!(view["status"], "FAILED");
    let id = view["id"].as_str().unwrap().to_owned();

    let got = cli(&stack, &["--json", "get", &id]);
    assert_eq!(got.status.code(), Some(0));
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(
        (got["id"].as_str(), got["status"].as_str()),
        (Some(id.as_str()), Some("FAILED"))
    );

    let listed = cli(&stack, &["--json", "list", "--limit", "5"]);
    assert_eq!(listed.status.code(), Some(0));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id.as_str()));

    // The API's refusal: a finished job cannot be cancelled.
    let refused = cli(&stack, &["cancel", &id]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("409"), "{}", text(&refused.stderr));
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn usage_and_connection_errors_have_their_own_exit_codes() {
    let stack = Stack::from_env().await;
    let usage = cli(&stack, &["submit"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = cli(&stack, &["--api", &format!("http://{closed}"), "get", "x"]);
    assert_eq!(unreachable.status.code(), Some(7), "{}", text(&unreachable.stderr));
    let cancelled_id = {
        let id = stack
            .submit_ok(&serde_json::json!({"type": "sleep", "input": {"seconds": 30}}))
            .await;
        let answer = stack.cancel(&id).await;
        assert_eq!(answer.status, 202);
        id
    };
    let waited = cli(&stack, &["wait", &cancelled_id]);
    assert_eq!(waited.status.code(), Some(4), "{}", text(&waited.stderr));
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn schedules_are_created_listed_paused_resumed_and_deleted_from_the_shell() {
    let stack = Stack::from_env().await;
    let created = cli(
        &stack,
        &[
            "--json",
            "schedule",
            "create",
            "--type",
            "sleep",
            "--input-json",
            r#"{"seconds": 0}"#,
            "--cron",
            "30 2 * * *",
            "--timezone",
            "Europe/Berlin",
            "--name",
            "nightly",
        ],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let view: Value = serde_json::from_slice(&created.stdout).expect("--json prints the schedule");
    let id = view["id"].as_str().unwrap().to_owned();
    assert_eq!(view["next_fire_times"].as_array().unwrap().len(), 5);
    let listed = cli(&stack, &["schedule", "list"]);
    assert!(text(&listed.stdout).contains(&id), "{}", text(&listed.stdout));
    let paused: Value = serde_json::from_slice(&cli(&stack, &["--json", "schedule", "pause", &id]).stdout).unwrap();
    assert_eq!(paused["paused"], true);
    let got = cli(&stack, &["schedule", "get", &id]);
    assert!(text(&got.stdout).contains("paused"), "{}", text(&got.stdout));
    let resumed: Value = serde_json::from_slice(&cli(&stack, &["--json", "schedule", "resume", &id]).stdout).unwrap();
    assert_eq!(
        (
            resumed["paused"].as_bool(),
            resumed["next_fire_times"].as_array().map(Vec::len)
        ),
        (Some(false), Some(5))
    );
    let refused = cli(
        &stack,
        &["schedule", "create", "--type", "sleep", "--cron", "0 25 * * *"],
    );
    assert_eq!(
        refused.status.code(),
        Some(6),
        "a refusal exits 6: {}",
        text(&refused.stderr)
    );
    assert!(text(&refused.stderr).contains("cron"), "{}", text(&refused.stderr));
    let deleted = cli(&stack, &["schedule", "delete", &id]);
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert_eq!(
        cli(&stack, &["schedule", "get", &id]).status.code(),
        Some(6),
        "gone: 404"
    );
}
