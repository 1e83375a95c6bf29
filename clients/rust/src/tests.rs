//! The client against a mock API on 127.0.0.1: retries on 429/503 after
//! `Retry-After`, one idempotency key across a submit's retries, typed
//! problems, no retry of a refusal.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::*;

/// A request the mock got: when, and its `Idempotency-Key`.
type Seen = (Instant, Option<String>);
/// An answer the mock gives: a status and its `Retry-After`.
type Scripted = (u16, Option<&'static str>);

/// What the mock saw, and the answers it gives in turn (then 202 with a job).
#[derive(Clone, Default)]
struct Mock {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<Vec<Scripted>>>,
}

fn job_view(id: &str) -> serde_json::Value {
    json!({"id": id, "type": "sleep", "status": "QUEUED", "queue": "fast", "priority": "normal",
           "progress": 0, "attempts": 0, "takeovers": 0, "max_attempts": 3, "timeout_seconds": 3600,
           "cancel_requested": false, "created_at": "2026-01-01T00:00:00.000Z",
           "updated_at": "2026-01-01T00:00:00.000Z"})
}

async fn answer(State(mock): State<Mock>, headers: HeaderMap) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    mock.seen.lock().unwrap().push((Instant::now(), key));
    let next = mock.script.lock().unwrap().pop();
    match next {
        None => (
            StatusCode::ACCEPTED,
            axum::Json(job_view("0190c1f0-0000-7000-8000-000000000001")),
        )
            .into_response(),
        Some((status, retry_after)) => {
            let problem = json!({"type": "urn:longrun:problem:busy", "title": "System busy", "status": status,
                                 "detail": "try later"});
            let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(problem)).into_response();
            response
                .headers_mut()
                .insert("content-type", "application/problem+json".parse().unwrap());
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.parse().unwrap());
            }
            response
        }
    }
}

async fn start(script: &[Scripted]) -> (String, Mock) {
    let mock = Mock {
        script: Arc::new(Mutex::new(script.iter().rev().copied().collect())),
        ..Mock::default()
    };
    let app = Router::new()
        .route("/jobs", post(answer))
        .route("/jobs/{id}", get(answer))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), mock)
}

fn sleep_request() -> SubmitRequest {
    serde_json::from_value(json!({"type": "sleep", "input": {"seconds": 1}})).unwrap()
}

#[tokio::test]
async fn a_submit_answered_503_then_429_is_retried_after_retry_after_with_one_idempotency_key() {
    let (base, mock) = start(&[(503, Some("1")), (429, Some("1"))]).await;
    let client = Client::new(&base, "alice").unwrap();
    let view = client.submit(&sleep_request(), None).await.unwrap();
    assert_eq!(view.status, "QUEUED");
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two refusals, then the job");
    let key = seen[0].1.clone().expect("a submit always carries an Idempotency-Key");
    assert!(seen.iter().all(|(_, k)| k.as_deref() == Some(key.as_str())), "{seen:?}");
    for pair in seen.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 was not honoured: {gap:?}"
        );
    }
    // A key the caller gives is the one sent.
    client.submit(&sleep_request(), Some("my-key")).await.unwrap();
    assert_eq!(mock.seen.lock().unwrap().last().unwrap().1.as_deref(), Some("my-key"));
}

#[tokio::test]
async fn retries_stop_at_the_policy_and_the_problem_comes_back_typed() {
    let (base, mock) = start(&[(503, Some("0")), (503, Some("0")), (503, Some("0"))]).await;
    let client = Client::new(&base, "alice").unwrap().with_retry(RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    });
    let err = client.submit(&sleep_request(), None).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    let ClientError::Problem(problem) = err else {
        panic!("a problem")
    };
    assert_eq!(problem.kind, "urn:longrun:problem:busy");
    assert_eq!(mock.seen.lock().unwrap().len(), 2, "max_attempts tries in all");
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let (base, mock) = start(&[(404, None)]).await;
    let client = Client::new(&base, "alice").unwrap();
    let err = client.get("0190c1f0-0000-7000-8000-000000000001", 0).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(mock.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_unreachable_api_is_a_connection_error_after_the_retries() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::new(&format!("http://{closed}"), "alice")
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 2,
            base_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(10),
        });
    let err = client.get("x", 0).await.unwrap_err();
    assert!(matches!(err, ClientError::Connection(_)), "{err:?}");
}

#[test]
fn upload_file_names_are_made_acceptable() {
    assert_eq!(upload_filename("sales.csv"), "sales.csv");
    assert_eq!(upload_filename("my sales (1).csv"), "my_sales__1_.csv");
    assert_eq!(upload_filename(".hidden"), "hidden");
    assert_eq!(upload_filename(&"x".repeat(300)).len(), 128);
}

#[tokio::test]
async fn an_https_api_is_spoken_to_over_tls() {
    // A deployed API (and every presigned S3 URL) is https: the client must
    // open a TLS handshake there, not refuse the scheme. The server only
    // looks at the first byte it gets: 0x16 starts a TLS handshake record.
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_byte = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        byte[0]
    });
    let client = Client::new(&format!("https://127.0.0.1:{port}"), "token").unwrap();
    let call = tokio::spawn(async move { client.get("job", 0).await });
    let first = tokio::time::timeout(std::time::Duration::from_secs(20), first_byte)
        .await
        .expect("the client connected")
        .unwrap();
    assert_eq!(first, 0x16, "the client opened with a TLS handshake");
    call.abort();
}
