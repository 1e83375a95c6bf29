//! At-least-once delivery: duplicate messages never run a job twice.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use longrun_e2e::Stack;
use serde_json::json;

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    match &item[name] {
        AttributeValue::N(n) => n.parse().unwrap(),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

fn message_for(id: &str) -> String {
    json!({"job_id": id, "enqueued_at": 0}).to_string()
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn duplicate_deliveries_of_a_finished_job_do_not_run_it_again() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0.2}}))
        .await;
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED");
    let before = stack.item(&id).await;

    for _ in 0..3 {
        stack.send_message(&stack.fast_queue_url, &message_for(&id)).await;
    }
    stack
        .wait_queue_drained(&stack.fast_queue_url, Duration::from_secs(60))
        .await;

    let after = stack.item(&id).await;
    assert_eq!(number(&after, "attempts"), 1);
    assert_eq!(number(&after, "version"), number(&before, "version"), "no write at all");
    assert_eq!(after, before);
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn a_duplicate_delivery_while_the_job_runs_is_dropped() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 3}}))
        .await;
    stack
        .wait_until(&id, Duration::from_secs(30), |view| view["status"] == "RUNNING")
        .await;
    stack.send_message(&stack.fast_queue_url, &message_for(&id)).await;
    stack.send_message(&stack.fast_queue_url, &message_for(&id)).await;
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED");
    stack
        .wait_queue_drained(&stack.fast_queue_url, Duration::from_secs(60))
        .await;
    let item = stack.item(&id).await;
    assert_eq!(number(&item, "attempts"), 1, "ran once");
    assert_eq!(stack.job(&id).await["status"], "SUCCEEDED");
}
