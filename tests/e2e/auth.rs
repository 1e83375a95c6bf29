//! Authentication over HTTP: every route refuses a caller without a usable
//! identity with `401` and `WWW-Authenticate: Bearer`, and changes nothing.
//! (The stack under `make test` runs with the template's default,
//! `AllowAnonymous=false`.) With real JWTs (`make test`'s moto lane) the
//! authorizer refuses first, with API Gateway's own answer; with callers
//! named by their bare token (the LocalStack lane) the functions do, with
//! problem+json.

use longrun_e2e::identity::signed_tokens;
use longrun_e2e::{token_for, Stack};
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
    // No header, an empty bearer token, and a scheme that is not Bearer;
    // with real tokens also a bare name, and claims swapped under a signature.
    let mut authorizations = vec![
        None,
        Some("Bearer ".to_owned()),
        Some("Basic YWxpY2U6c2VjcmV0".to_owned()),
    ];
    if signed_tokens() {
        let token = stack.token();
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let mallorys = token_for("mallory");
        let other_claims = mallorys.split('.').nth(1).unwrap();
        authorizations.push(Some(format!("Bearer {}", stack.owner)));
        authorizations.push(Some(format!("Bearer {head}.{other_claims}.{signature}")));
    }
    for (method, url) in &routes {
        for authorization in &authorizations {
            let mut request = match *method {
                "POST" => stack
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone()),
                _ => stack.http.get(url),
            };
            if let Some(value) = authorization.as_deref() {
                request = request.header("authorization", value);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let problem: serde_json::Value = response.json().await.expect("a problem body");
            let case = format!("{method} {url} with {authorization:?}");
            assert_eq!(status, 401, "{case}: {problem}");
            let challenge = headers["www-authenticate"].to_str().unwrap();
            if signed_tokens() {
                assert_eq!(
                    problem,
                    json!({"message": "Unauthorized"}),
                    "{case}: API Gateway's answer"
                );
                assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
            } else {
                assert_eq!(headers["content-type"], "application/problem+json", "{case}");
                assert_eq!(challenge, "Bearer", "{case}");
                assert_eq!(problem["type"], "urn:longrun:problem:unauthorized", "{case}");
            }
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

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn an_upload_is_its_owners_alone() {
    let stack = Stack::from_env().await;
    let key = stack
        .upload("sales.csv", b"region,amount\neu,10\nus,5\n".to_vec())
        .await;
    let report = |key: &str| json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount"]}});

    // Another caller can neither name it nor a key beside it.
    let mallory = format!("{}-mallory", stack.owner);
    for named in [key.clone(), key.replace("sales.csv", "other.csv")] {
        let refused = stack
            .http
            .post(format!("{}/jobs", stack.api))
            .bearer_auth(token_for(&mallory))
            .json(&report(&named))
            .send()
            .await
            .expect("POST /jobs");
        assert_eq!(refused.status().as_u16(), 422, "{named}");
        let problem: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "input.source.key", "{problem}");
        assert!(!problem.to_string().contains(&stack.owner), "{problem}");
    }

    // Its owner can, and the job reads the uploaded bytes.
    let id = stack.submit_ok(&report(&key)).await;
    let done = stack.wait_terminal(&id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let summary: serde_json::Value =
        serde_json::from_slice(&stack.download(done["result_url"].as_str().unwrap()).await).unwrap();
    assert_eq!(summary["rows"], 2, "{summary}");

    // Uploads need an identity too.
    let anonymous = stack
        .http
        .post(format!("{}/uploads", stack.api))
        .json(&json!({"bytes": 10}))
        .send()
        .await
        .expect("POST /uploads");
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[tokio::test]
#[ignore = "needs a running stack: make test"]
async fn another_owner_reaches_nothing_of_a_job_and_learns_nothing() {
    let stack = Stack::from_env().await;
    let key = stack.upload("sales.csv", b"region,amount\neu,10\n".to_vec()).await;
    let id = stack
        .submit_ok(
            &json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["region"], "values": ["amount"]}}),
        )
        .await;
    let done = stack.wait_terminal(&id, std::time::Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let result_key = stack
        .result_keys(&id)
        .await
        .into_iter()
        .find(|k| k.ends_with("/summary.json"))
        .expect("the summary was written");
    let mallory = format!("{}-mallory", stack.owner);
    let as_mallory = |request: reqwest::RequestBuilder| request.bearer_auth(token_for(&mallory)).send();

    // Reading and cancelling it answer exactly as for a job that does not exist.
    let unknown = "0190b0c4-0000-7000-8000-000000000000";
    for (theirs, none) in [
        (
            format!("{}/jobs/{id}", stack.api),
            format!("{}/jobs/{unknown}", stack.api),
        ),
        (
            format!("{}/jobs/{id}?wait=1", stack.api),
            format!("{}/jobs/{unknown}?wait=1", stack.api),
        ),
    ] {
        let theirs = as_mallory(stack.http.get(&theirs)).await.unwrap();
        let none = as_mallory(stack.http.get(&none)).await.unwrap();
        assert_eq!((theirs.status().as_u16(), none.status().as_u16()), (404, 404));
        let (theirs, none): (serde_json::Value, serde_json::Value) =
            (theirs.json().await.unwrap(), none.json().await.unwrap());
        assert_eq!(
            theirs["detail"].as_str().unwrap().replace(&id, "ID"),
            none["detail"].as_str().unwrap().replace(unknown, "ID")
        );
    }
    let cancel = as_mallory(stack.http.post(format!("{}/jobs/{id}/cancel", stack.api)))
        .await
        .unwrap();
    assert_eq!(cancel.status().as_u16(), 404);
    let listed: serde_json::Value = as_mallory(stack.http.get(format!("{}/jobs", stack.api)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!listed.to_string().contains(&id), "{listed}");

    // Neither the input nor the result can be named as an input, by any job type.
    for named in [&key, &result_key] {
        for body in [
            json!({"type": "report", "input": {"source": {"key": named}, "group_by": ["region"], "values": ["amount"]}}),
            json!({"type": "thumbnail", "input": {"source": {"key": named}, "widths": [8]}}),
        ] {
            let refused = as_mallory(stack.http.post(format!("{}/jobs", stack.api)).json(&body))
                .await
                .unwrap();
            assert_eq!(refused.status().as_u16(), 422, "{body}");
            let problem: serde_json::Value = refused.json().await.unwrap();
            assert_eq!(problem["errors"][0]["field"], "input.source.key", "{problem}");
            assert!(!problem.to_string().contains(&stack.owner), "{problem}");
        }
    }
}
