//! Job chains end to end: a report whose `summary.csv` feeds a second
//! report; a failing first step that never starts the second; a kill -9
//! right as the first step ends, which still makes exactly one second step;
//! cancelling the chain's first job after it succeeded cancels the rest.

use std::time::{Duration, Instant};

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

const SALES: &str = "region,amount\neu,10\nus,5\neu,2.5\nus,1\nasia,7\n";

async fn summary_json(stack: &Stack, view: &Value) -> Value {
    let result = view["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "summary.json"))
        .unwrap_or_else(|| panic!("no summary.json in {view}"));
    serde_json::from_slice(&stack.download(result["url"].as_str().unwrap()).await).unwrap()
}

/// `GET /jobs` as the stack's caller: the first page.
async fn list_jobs(stack: &Stack) -> Value {
    let response = stack
        .http
        .get(format!("{}/jobs", stack.api))
        .bearer_auth(stack.token())
        .send()
        .await
        .expect("GET /jobs");
    response.json().await.expect("a job list")
}

/// The chain view of the first job, once its overall status is terminal.
async fn wait_chain(stack: &Stack, root: &str, limit: Duration) -> Value {
    stack
        .wait_until(root, limit, |v| {
            let status = v["chain"]["status"].as_str().unwrap_or("QUEUED");
            !["QUEUED", "RUNNING"].contains(&status)
        })
        .await
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_report_feeds_its_summary_to_the_next_step_and_the_chain_reports_its_status() {
    let stack = Stack::from_env().await;
    let key = stack.upload("sales.csv", SALES.as_bytes().to_vec()).await;
    let root = stack
        .submit_ok(&json!({
            "type": "report",
            "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount"]},
            "then": [{
                "type": "report",
                "input": {"source": {"from_previous": "summary.csv"}, "group_by": ["region"], "values": ["amount_sum"]},
            }],
        }))
        .await;
    let chain = wait_chain(&stack, &root, Duration::from_secs(60)).await;
    assert_eq!(chain["chain"]["status"], "SUCCEEDED", "{chain}");
    let steps = chain["chain"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["job_id"], root.as_str());
    let second_id = steps[1]["job_id"].as_str().expect("the second step exists").to_owned();
    assert_eq!(chain["next_job_id"], second_id.as_str());

    let second = stack.job(&second_id).await;
    assert_eq!(second["status"], "SUCCEEDED", "{second}");
    assert_eq!(second["chain_id"], root.as_str());
    assert_eq!(second["previous_job_id"], root.as_str());
    assert!(
        second.get("next_job_id").is_none(),
        "the last step has no next: {second}"
    );

    // The second step's result is derived from the first's: per region, the
    // sum of the first step's sums.
    let first = summary_json(&stack, &chain).await;
    let derived = summary_json(&stack, &second).await;
    assert_eq!(derived["rows"], 3, "one row per region of the first summary: {derived}");
    for group in first["groups"].as_array().unwrap() {
        let region = &group["key"]["region"];
        let matching = derived["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| &g["key"]["region"] == region)
            .unwrap_or_else(|| panic!("no {region} in {derived}"));
        assert_eq!(
            matching["stats"]["amount_sum"]["sum"], group["stats"]["amount"]["sum"],
            "{region}: {derived} vs {first}"
        );
    }
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_failing_first_step_never_starts_the_second() {
    let stack = Stack::from_env().await;
    let root = stack
        .submit_ok(&json!({
            "type": "report",
            "input": {"source": {"csv": "g,v\nx,1\n"}, "group_by": ["no_such_column"], "values": ["v"]},
            "then": [{"type": "sleep", "input": {"seconds": 0}}],
        }))
        .await;
    let chain = wait_chain(&stack, &root, Duration::from_secs(60)).await;
    assert_eq!(chain["status"], "FAILED", "{chain}");
    assert_eq!(chain["chain"]["status"], "FAILED");
    let steps = chain["chain"]["steps"].as_array().unwrap();
    assert_eq!(steps[1]["status"], "PENDING", "{chain}");
    assert!(steps[1].get("job_id").is_none());
    assert!(chain.get("next_job_id").is_none());
    // Nothing else was created for this owner.
    let listed = list_jobs(&stack).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn cancelling_the_first_job_after_it_succeeded_cancels_the_running_step() {
    let stack = Stack::from_env().await;
    let root = stack
        .submit_ok(&json!({
            "type": "sleep",
            "input": {"seconds": 0},
            "then": [{"type": "sleep", "input": {"seconds": 30}}, {"type": "sleep", "input": {"seconds": 0}}],
        }))
        .await;
    let view = stack
        .wait_until(&root, Duration::from_secs(60), |v| {
            v["chain"]["steps"][1]["status"] == "RUNNING"
        })
        .await;
    let second = view["chain"]["steps"][1]["job_id"].as_str().unwrap().to_owned();
    let answer = stack.cancel(&root).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["id"], second.as_str(), "the cancel went to the live step");
    let chain = wait_chain(&stack, &root, Duration::from_secs(30)).await;
    assert_eq!(chain["chain"]["status"], "CANCELLED", "{chain}");
    assert_eq!(
        chain["chain"]["steps"][2]["status"], "PENDING",
        "the third step never started"
    );
    assert_eq!(stack.job(&second).await["status"], "CANCELLED");
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_kill_as_the_first_step_ends_still_makes_exactly_one_second_step() {
    let mut runtime = LocalRuntime::start("longrun-chain-kill", &[]).await;
    let stack = Stack::local(&runtime).await;
    let root = stack
        .submit_ok(&json!({
            "type": "sleep",
            "input": {"seconds": 2},
            "then": [{"type": "sleep", "input": {"seconds": 1}}],
        }))
        .await;
    // kill -9 the moment the first step is seen SUCCEEDED: its next step was
    // created in the same write; its message may or may not have been sent,
    // and it may be running.
    let started = Instant::now();
    loop {
        if stack.job(&root).await["status"] == "SUCCEEDED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first step never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.kill();
    runtime.restart().await;
    // The restarted runtime listens elsewhere; the caller is the same.
    let stack = Stack {
        owner: stack.owner.clone(),
        ..Stack::local(&runtime).await
    };
    let chain = wait_chain(&stack, &root, Duration::from_secs(60)).await;
    assert_eq!(chain["chain"]["status"], "SUCCEEDED", "{chain}");
    let listed = list_jobs(&stack).await;
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "exactly one second step: {listed}");
    let second = jobs.iter().find(|j| j["id"] != root.as_str()).unwrap();
    assert_eq!(second["previous_job_id"], root.as_str());
    assert_eq!(second["status"], "SUCCEEDED");
}
