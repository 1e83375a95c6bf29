//! Authentication over HTTP: every route refuses a caller without a usable
//! identity with `401` problem+json and `WWW-Authenticate: Bearer`, and
//! changes nothing. (The stack under `make test` runs with the template's
//! default, `AllowAnonymous=false`.)

use longrun_e2e::Stack;
use serde_json::json;

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn every_route_refuses_a_caller_without_identity() {
    let stack = Stack::from_env().await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 30}}))
        .await;
    let body = json!({"type": "sleep", "input": {"seconds": 0}}).to_string();
    let routes = [
        ("POST", format!("{}/jobs", stack.api)),
        ("GET", format!("{}/jobs", stack.api)),
        ("GET", format!("{}/jobs/{id}", stack.api)),
        ("POST", format!("{}/jobs/{id}/cancel", stack.api)),
    ];
    // No header, an empty bearer token, and a scheme that is not Bearer.
    let authorizations = [None, Some("Bearer "), Some("Basic YWxpY2U6c2VjcmV0")];
    for (method, url) in &routes {
        for authorization in authorizations {
            let mut request = match *method {
                "POST" => stack
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone()),
                _ => stack.http.get(url),
            };
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let problem: serde_json::Value = response.json().await.expect("a problem body");
            let case = format!("{method} {url} with {authorization:?}");
            assert_eq!(status, 401, "{case}: {problem}");
            assert_eq!(headers["content-type"], "application/problem+json", "{case}");
            assert_eq!(headers["www-authenticate"], "Bearer", "{case}");
            assert_eq!(problem["type"], "urn:longrun:problem:unauthorized", "{case}");
            assert!(!problem.to_string().contains(&stack.owner), "{case}: no owner leaks");
        }
    }
    let job = stack.job(&id).await;
    assert!(
        matches!(job["status"].as_str(), Some("QUEUED" | "RUNNING")) && job["cancel_requested"] == false,
        "the refused cancel changed nothing: {job}"
    );
    assert_eq!(stack.cancel(&id).await.status, 202, "its owner still can");
}
