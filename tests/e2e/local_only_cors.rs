//! Cross-origin access end to end, as a browser sees it: a stack started
//! with `AllowedOrigins` answers the preflights of an allowed page (and
//! only its), gives its submit, poll and stream answers the origin's
//! headers, and gives another origin's page nothing it may read; a stack
//! without it (the default) sends no CORS headers at all.

use std::time::Duration;

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

const APP: &str = "http://app.example";
const OTHER: &str = "http://other.example";

/// A preflight for `method` on `url` from `origin`: its allow-origin header.
async fn preflight(stack: &Stack, url: &str, origin: &str, method: &str, headers: &str) -> (u16, Option<String>) {
    let answer = stack
        .http
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("a preflight");
    let allowed = allow_origin(answer.headers());
    (answer.status().as_u16(), allowed)
}

fn allow_origin(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// `POST /jobs` as a page on `origin` sends it: its status and headers.
async fn submit_from(stack: &Stack, origin: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let answer = stack
        .http
        .post(format!("{}/jobs", stack.api))
        .bearer_auth(stack.token())
        .header("origin", origin)
        .json(&json!({"type": "sleep", "input": {"seconds": 0}}))
        .send()
        .await
        .expect("POST /jobs");
    let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
    (status, headers, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn an_allowed_origin_can_submit_poll_and_stream_and_another_cannot_read_anything() {
    let runtime = LocalRuntime::start(
        "longrun-cors",
        &["--parameter-overrides", &format!("AllowedOrigins={APP}")],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let jobs = format!("{}/jobs", stack.api);

    // Preflights: answered by the gateway, with the allow headers for the app only.
    let (status, allowed) = preflight(&stack, &jobs, APP, "POST", "authorization,content-type").await;
    assert_eq!((status, allowed.as_deref()), (204, Some(APP)));
    for (origin, method, headers) in [
        (OTHER, "POST", "authorization"),
        (APP, "PUT", "authorization"),
        (APP, "POST", "x-not-allowed"),
    ] {
        let (status, allowed) = preflight(&stack, &jobs, origin, method, headers).await;
        assert_eq!((status, allowed), (204, None), "{origin} {method} {headers}");
    }

    // Submit and poll from the app: its origin on the answers, Location readable.
    let (status, headers, view) = submit_from(&stack, APP).await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(allow_origin(&headers).as_deref(), Some(APP));
    let exposed = headers
        .get("access-control-expose-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(exposed.contains("location"), "{exposed}");
    let id = view["id"].as_str().unwrap().to_owned();
    let polled = stack
        .http
        .get(format!("{jobs}/{id}"))
        .bearer_auth(stack.token())
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(polled.headers()).as_deref(), Some(APP));

    // The same request from another origin: answered, but nothing a browser would let it read.
    let (status, headers, _) = submit_from(&stack, OTHER).await;
    assert_eq!((status, allow_origin(&headers)), (202, None));

    // The stream URL: its preflight and its answer carry the app's origin only.
    let ticket: Value = stack
        .http
        .post(format!("{jobs}/{id}/stream"))
        .bearer_auth(stack.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = ticket["url"].as_str().expect("a stream url").to_owned();
    let (status, allowed) = preflight(&stack, &url, APP, "GET", "last-event-id").await;
    assert_eq!((status, allowed.as_deref()), (204, Some(APP)));
    let (_, allowed) = preflight(&stack, &url, OTHER, "GET", "last-event-id").await;
    assert_eq!(allowed, None);
    for (origin, expected) in [(APP, Some(APP)), (OTHER, None)] {
        let stream = stack
            .http
            .get(&url)
            .header("origin", origin)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("the stream");
        assert_eq!(stream.status().as_u16(), 200, "{origin}");
        assert_eq!(allow_origin(stream.headers()).as_deref(), expected, "{origin}");
        let body = stream.text().await.unwrap_or_default();
        assert!(
            body.contains("event: end"),
            "{origin}: the stream runs to its end: {body}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn by_default_no_origin_gets_cross_origin_access() {
    let runtime = LocalRuntime::start("longrun-no-cors", &[]).await;
    let stack = Stack::local(&runtime).await;
    let (_, allowed) = preflight(&stack, &format!("{}/jobs", stack.api), APP, "POST", "authorization").await;
    assert_eq!(allowed, None);
    let (status, headers, view) = submit_from(&stack, APP).await;
    assert_eq!(status, 202, "{view}");
    assert_eq!(allow_origin(&headers), None);
}
