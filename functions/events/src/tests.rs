//! Unit tests of the event stream over the memory store: who may open it,
//! what it sends, and where a reconnect resumes.

use longrun_core::ports::{JobLifecycle, OwnerData};
use std::sync::Arc;

use longrun_core::memory::{MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::StreamTicket;
use longrun_core::record::{Finish, Lease, ProgressUpdate};
use longrun_core::time::now_ms;
use longrun_core::{JobRecord, JobStatus};
use longrun_lambda::apigw::HttpEvent;
use serde_json::json;
use tokio_stream::StreamExt;

use super::*;

struct Fixture {
    deps: EventsDeps,
    store: Arc<MemoryJobStore>,
}

fn fixture() -> Fixture {
    fixture_capped_at("5")
}

fn fixture_capped_at(max_seconds: &str) -> Fixture {
    let store = Arc::new(MemoryJobStore::new());
    let deps = EventsDeps {
        config: Arc::new(longrun_core::fixtures::config(&[
            ("STREAM_POLL_MS", "10"),
            ("STREAM_MAX_SECONDS", max_seconds),
        ])),
        store: store.clone(),
        objects: Arc::new(MemoryObjectStore::new()),
    };
    Fixture { deps, store }
}

fn job(f: &Fixture) -> JobRecord {
    let job = longrun_core::fixtures::queued_job("alice", "sleep", json!({"seconds": 1}));
    f.store.insert(job.clone());
    job
}

async fn ticket(f: &Fixture, owner: &str, job: &JobRecord) -> String {
    let (token, ticket) = StreamTicket::issue(owner, &job.id, now_ms() + 60_000);
    f.store.put_stream_ticket(&ticket).await.unwrap();
    token
}

fn request(job: &JobRecord, query: &str, last_event_id: Option<&str>) -> ApiGatewayV2httpRequest {
    let path = format!("/jobs/{}/events", job.id);
    HttpEvent {
        route_key: "$default",
        method: "GET",
        path: &path,
        query,
        headers: last_event_id
            .map(|id| vec![("Last-Event-ID".to_owned(), id.to_owned())])
            .unwrap_or_default(),
        body: None,
        path_parameters: Vec::new(),
        jwt_claims: None,
    }
    .to_request()
}

/// The whole body as text (the stream ends with the job or the time cap).
async fn body(stream: EventStream) -> String {
    let chunks: Vec<Bytes> = stream.body.map(|c| c.unwrap()).collect().await;
    chunks.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect()
}

#[tokio::test]
async fn without_a_valid_ticket_for_the_job_the_stream_is_401() {
    let f = fixture();
    let job = job(&f);
    let other = longrun_core::fixtures::queued_job("alice", "sleep", json!({"seconds": 1}));
    f.store.insert(other.clone());
    let others_ticket = ticket(&f, "alice", &other).await;
    let (expired_token, mut expired) = StreamTicket::issue("alice", &job.id, now_ms() - 1);
    expired.expires_at = now_ms() - 1;
    f.store.put_stream_ticket(&expired).await.unwrap();
    for query in [
        String::new(),
        format!("ticket={}", "0".repeat(64)),
        format!("ticket={others_ticket}"),
        format!("ticket={expired_token}"),
    ] {
        let answer = open(&f.deps, &request(&job, &query, None)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(answer.headers["content-type"], "application/problem+json");
    }
    // A ticket handed to someone who no longer owns the job opens nothing either.
    let mallory = ticket(&f, "mallory", &job).await;
    let answer = open(&f.deps, &request(&job, &format!("ticket={mallory}"), None)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_stream_sends_each_change_then_the_end_and_closes() {
    let f = fixture();
    let job = job(&f);
    let token = ticket(&f, "alice", &job).await;
    let answer = open(&f.deps, &request(&job, &format!("ticket={token}"), None)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let store = f.store.clone();
    let id = job.id.clone();
    let writer = tokio::spawn(async move {
        let lease = Lease::new(now_ms() + 60_000);
        store.claim(&id, &lease, now_ms()).await.unwrap();
        for progress in [30, 60] {
            tokio::time::sleep(Duration::from_millis(60)).await;
            let update = ProgressUpdate {
                progress,
                message: Some(format!("{progress}%")),
                checkpoint: None,
            };
            store
                .record_progress(&id, &lease.token, &update, now_ms() + i64::from(progress))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        let finish = Finish::Succeeded {
            results: Vec::new(),
            next: None,
        };
        store.finish(&id, &lease.token, &finish, now_ms() + 100).await.unwrap();
    });
    let text = body(answer).await;
    writer.await.unwrap();
    assert!(text.starts_with("retry: 1000\n\n"), "{text}");
    // Each event: its id (when the state began) and the progress it shows.
    // The claim may come before or after the first read, so QUEUED and
    // RUNNING can both show 0%.
    let events: Vec<(i64, u64)> = text
        .split("\n\n")
        .filter(|block| block.contains("event: job"))
        .map(|block| {
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .unwrap()
                .parse()
                .unwrap();
            let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let view: serde_json::Value = serde_json::from_str(data).unwrap();
            (id, view["progress"].as_u64().unwrap())
        })
        .collect();
    assert!(
        events.windows(2).all(|w| w[0].0 < w[1].0),
        "each state once, in order: {events:?}"
    );
    assert!(
        events.windows(2).all(|w| w[0].1 <= w[1].1),
        "progress never goes back: {events:?}"
    );
    for shown in [30, 60] {
        assert_eq!(
            events.iter().filter(|e| e.1 == shown).count(),
            1,
            "{shown}% once: {events:?}"
        );
    }
    let end = text.split("\n\n").filter(|b| !b.is_empty()).last().unwrap();
    assert!(end.starts_with("id: end\nevent: end\ndata: "), "{end}");
    assert!(end.contains("\"status\":\"SUCCEEDED\""), "{end}");
}

#[tokio::test]
async fn a_reconnect_gets_only_newer_states_and_after_the_end_204() {
    let f = fixture();
    let mut job = job(&f);
    job.status = JobStatus::Succeeded;
    job.finished_at = Some(now_ms());
    f.store.insert(job.clone());
    let token = ticket(&f, "alice", &job).await;
    let query = format!("ticket={token}");

    let after_end = open(&f.deps, &request(&job, &query, Some("end"))).await;
    assert_eq!(after_end.status, StatusCode::NO_CONTENT);
    assert_eq!(body(after_end).await, "");

    // It saw an older version: only the end follows, no replay of what it saw.
    let resumed = body(open(&f.deps, &request(&job, &query, Some("1"))).await).await;
    assert_eq!(resumed.matches("event: ").count(), 1, "{resumed}");
    assert!(resumed.contains("event: end"));
    // `?lastEventId=` does the same for a page that reloads.
    let again = open(&f.deps, &request(&job, &format!("{query}&lastEventId=end"), None)).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_reconnect_to_a_running_job_skips_the_state_it_saw_even_after_heartbeats() {
    let f = fixture();
    let job = job(&f);
    let lease = Lease::new(now_ms() + 60_000);
    let longrun_core::ports::ClaimOutcome::Claimed(claimed) = f.store.claim(&job.id, &lease, now_ms()).await.unwrap()
    else {
        panic!("claimable")
    };
    // A heartbeat: a new version, the same visible state.
    f.store.extend_lease(&job.id, &lease, now_ms()).await.unwrap();
    let token = ticket(&f, "alice", &job).await;
    let query = format!("ticket={token}");
    let seen = claimed.updated_at.to_string();
    let resumed = body(open(&f.deps, &request(&job, &query, Some(&seen))).await).await;
    assert_eq!(
        resumed.matches("event: job").count(),
        0,
        "nothing new since it saw: {resumed}"
    );
    let older = (claimed.updated_at - 1).to_string();
    let behind = body(open(&f.deps, &request(&job, &query, Some(&older))).await).await;
    assert_eq!(
        behind.matches("event: job").count(),
        1,
        "the current state once: {behind}"
    );
    assert!(behind.contains(&format!("id: {seen}\n")), "{behind}");
}

#[tokio::test]
async fn a_stream_of_an_unchanging_job_ends_at_its_time_cap_with_one_event() {
    let f = fixture_capped_at("40");
    let job = job(&f);
    let token = ticket(&f, "alice", &job).await;
    tokio::time::pause();
    let answer = open(&f.deps, &request(&job, &format!("ticket={token}"), None)).await;
    let text = body(answer).await;
    assert_eq!(text.matches("event: job").count(), 1, "one event, no repeats: {text}");
    assert!(text.contains(": keep-alive"), "an idle stream sends comments: {text}");
    assert!(!text.contains("event: end"), "the job has not ended: {text}");
}

#[test]
fn last_event_ids_parse_leniently() {
    assert_eq!(LastEvent::parse(None), LastEvent::None);
    assert_eq!(LastEvent::parse(Some("end")), LastEvent::End);
    assert_eq!(LastEvent::parse(Some(" 42 ")), LastEvent::At(42));
    assert_eq!(LastEvent::parse(Some("garbage")), LastEvent::None);
}

#[test]
fn a_large_record_is_read_less_often_up_to_a_cap() {
    let base = Duration::from_millis(1000);
    let cases = [
        ("small", 600, 1_000),
        ("exactly 4 KB", 4096, 1_000),
        ("just over", 4097, 2_000),
        ("20 KB", 20 * 1024, 5_000),
        ("a 256 KB input, capped", 256 * 1024, 10_000),
        ("empty", 0, 1_000),
    ];
    for (case, bytes, expected_ms) in cases {
        assert_eq!(poll_interval(base, bytes), Duration::from_millis(expected_ms), "{case}");
    }
    assert_eq!(
        poll_interval(Duration::from_secs(20), 1 << 20),
        Duration::from_secs(20),
        "never below the base"
    );
}

#[tokio::test]
async fn open_streams_are_capped_per_url_and_per_caller_and_a_closed_one_gives_its_place_back() {
    let mut f = fixture_capped_at("60");
    f.deps.config = Arc::new(longrun_core::fixtures::config(&[
        ("STREAM_POLL_MS", "10"),
        ("STREAM_MAX_SECONDS", "60"),
        ("MAX_STREAMS_PER_OWNER", "3"),
        ("MAX_STREAMS_PER_TICKET", "2"),
    ]));
    let job = job(&f);
    let url = ticket(&f, "alice", &job).await;
    let first = open(&f.deps, &request(&job, &format!("ticket={url}"), None)).await;
    let second = open(&f.deps, &request(&job, &format!("ticket={url}"), None)).await;
    assert_eq!((first.status, second.status), (StatusCode::OK, StatusCode::OK));
    let refused = open(&f.deps, &request(&job, &format!("ticket={url}"), None)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers["retry-after"], "30");
    let problem: serde_json::Value = serde_json::from_str(&body(refused).await).unwrap();
    assert_eq!(problem["type"], "urn:longrun:problem:too-many-streams", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("with this URL"),
        "{problem}"
    );
    // Another URL of the same caller: one more, then the caller's cap.
    let other_url = ticket(&f, "alice", &job).await;
    let third = open(&f.deps, &request(&job, &format!("ticket={other_url}"), None)).await;
    assert_eq!(third.status, StatusCode::OK);
    let refused = open(&f.deps, &request(&job, &format!("ticket={other_url}"), None)).await;
    let problem: serde_json::Value = serde_json::from_str(&body(refused).await).unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("for this caller"),
        "{problem}"
    );
    // A client that goes away gives its place back.
    drop(first);
    let mut reopened = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        reopened = open(&f.deps, &request(&job, &format!("ticket={url}"), None))
            .await
            .status;
        if reopened == StatusCode::OK {
            break;
        }
    }
    assert_eq!(reopened, StatusCode::OK);
    drop((second, third));
}
