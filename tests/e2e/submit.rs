//! Submit over HTTP: idempotency and every class of bad input.

use std::time::Duration;

use longrun_e2e::Stack;
use serde_json::json;

/// name, body, content type, idempotency key, expected status.
type BadRequest<'a> = (&'a str, Vec<u8>, &'a str, Option<&'a str>, u16);

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn an_idempotent_replay_returns_the_same_job_and_runs_it_once() {
    let stack = Stack::from_env().await;
    let body = json!({"type": "sleep", "input": {"seconds": 0.5}});
    let first = stack.submit(&body, Some("order-7")).await;
    assert_eq!(first.status, 202, "{:?}", first.body);
    let id = first.body["id"].as_str().unwrap().to_owned();
    let replay = stack.submit(&body, Some("order-7")).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.body["id"], id.as_str());
    assert_eq!(replay.header("location"), Some(format!("/jobs/{id}").as_str()));

    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED");
    let after = stack.submit(&body, Some("order-7")).await;
    assert_eq!((after.status, after.body["status"].as_str()), (200, Some("SUCCEEDED")));
    stack
        .wait_queue_drained(&stack.fast_queue_url, Duration::from_secs(60))
        .await;
    assert_eq!(stack.job(&id).await["attempts"], 1, "one record, one message, one run");
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn reusing_a_key_with_another_body_is_422() {
    let stack = Stack::from_env().await;
    let first = stack
        .submit(&json!({"type": "sleep", "input": {"seconds": 0}}), Some("k"))
        .await;
    assert_eq!(first.status, 202);
    let other = stack
        .submit(&json!({"type": "sleep", "input": {"seconds": 1}}), Some("k"))
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.header("content-type"), Some("application/problem+json"));
    assert_eq!(other.body["type"], "urn:longrun:problem:idempotency-key-reused");
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn every_bad_input_class_gets_a_problem_never_a_5xx() {
    let stack = Stack::from_env().await;
    let big = format!(
        r#"{{"type":"sleep","input":{{"seconds":1,"pad":"{}"}}}}"#,
        "x".repeat(300 * 1024)
    );
    let cases: Vec<BadRequest> = vec![
        (
            "no content type",
            br#"{"type":"sleep","input":{"seconds":1}}"#.to_vec(),
            "",
            None,
            415,
        ),
        (
            "text content type",
            br#"{"type":"sleep","input":{"seconds":1}}"#.to_vec(),
            "text/plain",
            None,
            415,
        ),
        ("malformed JSON", b"{\"type\": ".to_vec(), "application/json", None, 400),
        (
            "binary garbage",
            vec![0xff, 0xfe, 0x00, 0x81],
            "application/json",
            None,
            400,
        ),
        ("empty body", Vec::new(), "application/json", None, 400),
        ("JSON array", b"[]".to_vec(), "application/json", None, 422),
        (
            "missing input",
            br#"{"type":"sleep"}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        (
            "unknown type",
            br#"{"type":"teleport","input":{}}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        (
            "bad input",
            br#"{"type":"report","input":{"source":{"key":"../etc/passwd"},"group_by":["a"],"values":["b"]}}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        (
            "wrong field type",
            br#"{"type":"sleep","input":{"seconds":"ten"}}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        (
            "unknown field",
            br#"{"type":"sleep","input":{"seconds":1},"colour":"red"}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        (
            "delay too long",
            br#"{"type":"sleep","input":{"seconds":1},"delay_seconds":31536001}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        (
            "too many attempts",
            br#"{"type":"sleep","input":{"seconds":1},"max_attempts":50}"#.to_vec(),
            "application/json",
            None,
            422,
        ),
        ("oversize body", big.into_bytes(), "application/json", None, 413),
        (
            "bad idempotency key",
            br#"{"type":"sleep","input":{"seconds":1}}"#.to_vec(),
            "application/json",
            Some("has spaces in it"),
            400,
        ),
    ];
    for (name, body, content_type, key, status) in cases {
        let answer = stack.submit_raw(body, content_type, key).await;
        assert_eq!(answer.status, status, "{name}: {:?}", answer.body);
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{name}"
        );
        assert_eq!(answer.body["status"], status, "{name}");
        assert!(answer.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{name}");
    }
}
