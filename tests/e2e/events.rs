//! Streamed progress end to end: `POST /jobs/{id}/stream` hands out a URL,
//! `GET` on it is `text/event-stream` with increasing progress and a last
//! `end` event; `Last-Event-ID` resumes without replaying; after `end` a
//! reconnect is `204`; no ticket, or another job's, is `401`.

use std::time::{Duration, Instant};

use longrun_e2e::Stack;
use serde_json::{json, Value};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Event {
    id: String,
    event: String,
    data: Value,
}

async fn stream_url(stack: &Stack, id: &str) -> String {
    let answer = stack
        .http
        .post(format!("{}/jobs/{id}/stream", stack.api))
        .bearer_auth(stack.token())
        .send()
        .await
        .expect("POST /jobs/{id}/stream");
    assert_eq!(answer.status().as_u16(), 201);
    let body: Value = answer.json().await.unwrap();
    body["url"].as_str().expect("url").to_owned()
}

/// Reads events from `url` until `stop` says so, the stream ends, or `limit`.
async fn read_events(
    stack: &Stack,
    url: &str,
    last_event_id: Option<&str>,
    limit: Duration,
    stop: impl Fn(&Event) -> bool,
) -> (u16, Option<String>, Vec<Event>) {
    let mut request = stack.http.get(url);
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last);
    }
    let mut response = request.send().await.expect("GET the stream");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut events = Vec::new();
    let mut buffer = String::new();
    let started = Instant::now();
    while started.elapsed() < limit {
        let chunk = match tokio::time::timeout(Duration::from_secs(5), response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            _ => break,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = Event {
                id: String::new(),
                event: "message".into(),
                data: Value::Null,
            };
            let mut has_data = false;
            for line in block.lines() {
                if let Some(id) = line.strip_prefix("id: ") {
                    event.id = id.to_owned();
                } else if let Some(name) = line.strip_prefix("event: ") {
                    event.event = name.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data = serde_json::from_str(data).expect("event data is JSON");
                    has_data = true;
                }
            }
            if has_data {
                let done = stop(&event);
                events.push(event);
                if done {
                    return (status, content_type, events);
                }
            }
        }
    }
    (status, content_type, events)
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_stream_shows_increasing_progress_then_the_end_and_resumes_without_replaying() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 4}}))
        .await;
    let url = stream_url(&stack, &id).await;
    assert!(url.contains(&format!("/jobs/{id}/events?ticket=")), "{url}");

    // The first connection: read until the job shows some progress, then drop it.
    let (status, content_type, first) = read_events(&stack, &url, None, Duration::from_secs(30), |e| {
        e.data["progress"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    assert!(!first.is_empty());
    let seen = first.last().unwrap().clone();
    assert_eq!(seen.event, "job", "{first:?}");
    let seen_version: u64 = seen.id.parse().expect("a job event's id is when its state began (ms)");

    // Reconnect where it left off: nothing at or before that id again.
    let (status, _, rest) = read_events(&stack, &url, Some(&seen.id), Duration::from_secs(30), |e| {
        e.event == "end"
    })
    .await;
    assert_eq!(status, 200);
    let end = rest.last().expect("events after the reconnect");
    assert_eq!(end.event, "end", "{rest:?}");
    assert_eq!(end.id, "end");
    assert_eq!(end.data["status"], "SUCCEEDED");
    assert_eq!(end.data["progress"], 100);
    let mut previous_version = seen_version;
    let mut previous_progress = seen.data["progress"].as_u64().unwrap();
    for event in rest.iter().filter(|e| e.event == "job") {
        let version: u64 = event.id.parse().unwrap();
        assert!(version > previous_version, "replayed or out of order: {rest:?}");
        let progress = event.data["progress"].as_u64().unwrap();
        assert!(progress >= previous_progress, "progress went back: {rest:?}");
        (previous_version, previous_progress) = (version, progress);
    }
    let all: Vec<u64> = first
        .iter()
        .chain(rest.iter())
        .filter_map(|e| e.data["progress"].as_u64())
        .collect();
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
    assert!(
        all.iter().any(|&p| p > 0 && p < 100),
        "no progress between start and end: {all:?}"
    );

    // After the end, a reconnect is 204: an EventSource stops there.
    let (status, _, after) = read_events(&stack, &url, Some("end"), Duration::from_secs(5), |_| true).await;
    assert_eq!(status, 204);
    assert!(after.is_empty());
}

#[tokio::test]
#[ignore = "end-to-end: needs a running stack (make test)"]
async fn a_stream_opens_only_with_a_ticket_for_that_job() {
    let stack = Stack::from_env().await;
    let first = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0}}))
        .await;
    let second = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0}}))
        .await;
    let url = stream_url(&stack, &first).await;
    let ticket = url.split("ticket=").nth(1).unwrap();
    for (what, target) in [
        ("no ticket", format!("{}/jobs/{first}/events", stack.api)),
        (
            "a made-up ticket",
            format!("{}/jobs/{first}/events?ticket={}", stack.api, "0".repeat(64)),
        ),
        (
            "another job's ticket",
            format!("{}/jobs/{second}/events?ticket={ticket}", stack.api),
        ),
    ] {
        let response = stack.http.get(&target).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "urn:longrun:problem:unauthorized", "{what}");
    }
    // Another owner cannot get a URL for this job.
    let answer = stack
        .http
        .post(format!("{}/jobs/{first}/stream", stack.api))
        .bearer_auth(longrun_e2e::token_for("someone-else"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    // The right ticket opens it: once the job has ended, the end comes at once.
    stack.wait_terminal(&first, Duration::from_secs(30)).await;
    let (status, _, events) = read_events(&stack, &url, None, Duration::from_secs(30), |e| e.event == "end").await;
    assert_eq!(status, 200);
    assert_eq!(events.len(), 1, "only the end: {events:?}");
    assert_eq!((events[0].event.as_str(), events[0].id.as_str()), ("end", "end"));
    assert_eq!(events[0].data["status"], "SUCCEEDED");
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn one_url_opens_two_streams_at_once_one_caller_five_and_a_closed_one_frees_its_place() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 60}}))
        .await;
    let refusal = |answer: reqwest::Response| async move {
        let status = answer.status().as_u16();
        let retry = answer.headers().get("retry-after").is_some();
        let problem: Value = answer.json().await.unwrap_or_default();
        (
            status,
            retry,
            problem["type"].as_str().unwrap_or("").to_owned(),
            problem["detail"].to_string(),
        )
    };
    let url = stream_url(&stack, &id).await;
    let first = stack.http.get(&url).send().await.unwrap();
    let second = stack.http.get(&url).send().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let (status, retry, kind, detail) = refusal(stack.http.get(&url).send().await.unwrap()).await;
    assert_eq!(
        (status, retry, kind.as_str()),
        (429, true, "urn:longrun:problem:too-many-streams")
    );
    assert!(detail.contains("with this URL"), "{detail}");
    // More URLs of the same caller: up to five streams in all.
    let mut held = vec![first, second];
    for _ in 0..3 {
        let more = stream_url(&stack, &id).await;
        let answer = stack.http.get(&more).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        held.push(answer);
    }
    let sixth = stream_url(&stack, &id).await;
    let (status, _, kind, detail) = refusal(stack.http.get(&sixth).send().await.unwrap()).await;
    assert_eq!((status, kind.as_str()), (429, "urn:longrun:problem:too-many-streams"));
    assert!(detail.contains("for this caller"), "{detail}");
    // A client that goes away gives its place back.
    held.remove(0);
    let started = Instant::now();
    loop {
        let again = stack.http.get(&sixth).send().await.unwrap();
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the closed stream's place never came back"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stack.cancel(&id).await;
}
