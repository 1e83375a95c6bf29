//! Uploads: presigned PUTs under the caller's own prefix, and jobs naming only
//! their owner's inputs.

use super::*;

#[tokio::test]
async fn an_upload_is_a_short_lived_put_under_the_callers_own_prefix() {
    let f = fixture();
    let response = handle(
        &f.deps,
        upload_request(r#"{"bytes": 1234, "filename": "sales.csv"}"#, Some("alice")),
    )
    .await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let ticket: longrun_core::api::UploadTicket = serde_json::from_value(body_json(&response)).unwrap();
    let prefix = input_prefix(&owner("alice"));
    let rest = ticket.key.strip_prefix(&prefix).expect("under alice's prefix");
    let (id, name) = rest.split_once('/').unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{rest}");
    assert_eq!(name, "sales.csv");
    assert!(longrun_core::access::owns_input(&owner("alice"), &ticket.key));
    assert!(!longrun_core::access::owns_input(&owner("bob"), &ticket.key));
    assert_eq!((ticket.method.as_str(), ticket.bytes), ("PUT", 1234));
    assert_eq!(ticket.headers["content-length"], "1234");
    assert_eq!(ticket.headers["content-type"], "application/octet-stream");
    assert!(
        ticket.upload_url.contains("bytes=1234") && ticket.upload_url.contains("expires_in=300"),
        "{}",
        ticket.upload_url
    );
    let second = handle(&f.deps, upload_request(r#"{"bytes": 1}"#, Some("alice"))).await;
    let second: longrun_core::api::UploadTicket = serde_json::from_value(body_json(&second)).unwrap();
    assert_ne!(second.key, ticket.key, "every upload gets a key of its own");
    assert!(second.key.ends_with("/input"));
    assert!(
        f.store.is_empty() && f.queue.sent().is_empty(),
        "an upload writes no job"
    );
}

#[tokio::test]
async fn uploads_refuse_bad_sizes_names_bodies_and_anonymous_callers() {
    let f = fixture();
    let cap = f.deps.config.max_upload_bytes;
    let cases = [
        (r#"{"bytes": 0}"#.to_owned(), 422),
        (format!(r#"{{"bytes": {}}}"#, cap + 1), 422),
        (r#"{"bytes": -1}"#.to_owned(), 422),
        (r#"{"bytes": 10, "filename": "../x"}"#.to_owned(), 422),
        (r#"{"bytes": 10, "filename": "a/b"}"#.to_owned(), 422),
        (r#"{"bytes": 10, "filename": ".hidden"}"#.to_owned(), 422),
        (r#"{"bytes": 10, "key": "inputs/x"}"#.to_owned(), 422),
        ("{not json".to_owned(), 400),
    ];
    for (body, status) in &cases {
        let response = handle(&f.deps, upload_request(body, Some("alice"))).await;
        assert_eq!(response.status_code, *status, "{body}: {:?}", response.body);
        assert_eq!(response.headers["content-type"], "application/problem+json");
    }
    let at_cap = handle(
        &f.deps,
        upload_request(&format!(r#"{{"bytes": {cap}}}"#), Some("alice")),
    )
    .await;
    assert_eq!(at_cap.status_code, 201);
    assert_eq!(
        handle(&f.deps, upload_request(r#"{"bytes": 1}"#, None))
            .await
            .status_code,
        401
    );
}

#[tokio::test]
async fn a_job_may_only_name_its_owners_own_inputs() {
    let f = fixture();
    let report = |key: &str| {
        json!({"type": "report", "input": {"source": {"key": key}, "group_by": ["g"], "values": ["v"]}}).to_string()
    };
    let alices = format!("{}u1/sales.csv", input_prefix(&owner("alice")));
    let refused = [
        alices.clone(),
        "inputs/sales.csv".to_owned(),
        format!(
            "{}u1/../../{}x.csv",
            input_prefix(&owner("bob")),
            input_prefix(&owner("bob"))
        ),
        format!("{}u1//sales.csv", input_prefix(&owner("bob"))),
        format!("{}%2e%2e/sales.csv", input_prefix(&owner("bob"))),
    ];
    for key in &refused {
        let response = handle(&f.deps, post(&report(key), &[], Some("bob"))).await;
        assert_eq!(response.status_code, 422, "{key}");
        let problem = body_json(&response);
        assert_eq!(problem["errors"][0]["field"], "input.source.key", "{problem}");
        assert!(!problem.to_string().contains("alice"), "nothing about alice: {problem}");
    }
    assert!(f.store.is_empty());
    let own = handle(&f.deps, post(&report(&alices), &[], Some("alice"))).await;
    assert_eq!(own.status_code, 202, "{:?}", own.body);
}

#[tokio::test]
async fn an_owner_gets_upload_urls_up_to_its_limit_per_minute_then_429() {
    let f = fixture_with(&[("UPLOAD_URLS_PER_MINUTE", "2")]);
    for _ in 0..2 {
        let handed = handle(&f.deps, upload_request(r#"{"bytes": 10}"#, Some("alice"))).await;
        assert_eq!(handed.status_code, 201, "{:?}", handed.body);
    }
    let refused = handle(&f.deps, upload_request(r#"{"bytes": 10}"#, Some("alice"))).await;
    assert_eq!(refused.status_code, 429, "{:?}", refused.body);
    assert_eq!(body_json(&refused)["type"], "urn:longrun:problem:rate-limited");
    assert!(refused.headers.contains_key("retry-after"));
    let bob = handle(&f.deps, upload_request(r#"{"bytes": 10}"#, Some("bob"))).await;
    assert_eq!(bob.status_code, 201, "another owner has a limit of its own");
}
