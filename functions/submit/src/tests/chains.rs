//! Chains at submit: their bounds, their fields, their replays.

use super::*;

#[tokio::test]
async fn a_chain_of_more_than_five_further_steps_is_refused() {
    let f = fixture();
    let refused = handle(&f.deps, post(&with_then(sleep_steps(6)), &[], Some("alice"))).await;
    assert_eq!(error_fields(&refused), ["then"]);
    assert!(f.store.is_empty());
    let five = handle(&f.deps, post(&with_then(sleep_steps(5)), &[], Some("alice"))).await;
    assert_eq!(five.status_code, 202, "{:?}", five.body);
}

#[tokio::test]
async fn a_step_of_an_unknown_type_or_with_a_bad_placeholder_is_refused_on_its_field() {
    let f = fixture();
    let unknown = handle(
        &f.deps,
        post(
            &with_then(json!([{"type": "mine-bitcoin", "input": {}}])),
            &[],
            Some("alice"),
        ),
    )
    .await;
    assert_eq!(error_fields(&unknown), ["then[0].type"]);

    let bad_name = json!([{"type": "report",
        "input": {"source": {"from_previous": "../x"}, "group_by": ["region"], "values": ["amount"]}}]);
    let refused = handle(&f.deps, post(&with_then(bad_name), &[], Some("alice"))).await;
    assert_eq!(error_fields(&refused), ["then[0].input"]);
    assert!(
        body_json(&refused)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("../x"),
        "{:?}",
        refused.body
    );

    let second_bad = json!([
        {"type": "sleep", "input": {"seconds": 1}},
        {"type": "sleep", "input": {"seconds": -1}},
    ]);
    let refused = handle(&f.deps, post(&with_then(second_bad), &[], Some("alice"))).await;
    let fields = error_fields(&refused);
    assert!(
        !fields.is_empty() && fields.iter().all(|field| field.starts_with("then[1].input")),
        "{fields:?}"
    );
    assert!(f.store.is_empty() && f.queue.sent().is_empty());
}

#[tokio::test]
async fn a_valid_chain_is_stored_as_the_first_jobs_chain() {
    let f = fixture();
    let then = json!([{"type": "report",
        "input": {"source": {"from_previous": "summary.csv"}, "group_by": ["region"], "values": ["amount_sum"]}}]);
    let body = json!({"type": "report",
        "input": {"source": {"key": format!("{}u1/sales.csv", input_prefix(&owner("alice")))},
                  "group_by": ["region"], "values": ["amount"]},
        "then": then});
    let accepted = handle(&f.deps, post(&body.to_string(), &[], Some("alice"))).await;
    assert_eq!(accepted.status_code, 202, "{:?}", accepted.body);
    let id = JobId::parse(body_json(&accepted)["id"].as_str().unwrap()).unwrap();
    let job = f.store.get(&id).await.unwrap().unwrap();
    let link = job.chain.expect("the first job carries its chain");
    assert_eq!((link.step, &link.chain_id), (0, &id));
    assert_eq!(link.previous_job_id, None);
    assert!(link.readable_results.is_empty(), "the first job reads no results");
    let steps: Vec<ChainStep> = serde_json::from_value(then).unwrap();
    assert_eq!(link.then, steps, "kept as given, placeholder and all");
    assert_eq!(f.queue.sent().len(), 1, "only the first job is sent");
    assert_eq!(f.store.len(), 1, "the next step is made when this one succeeds");
}

#[tokio::test]
async fn the_replay_of_a_key_must_repeat_its_then_and_callback_url() {
    let f = fixture();
    handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    let key = [("Idempotency-Key", "chain-1")];
    let first = handle(&f.deps, post(&with_then(sleep_steps(1)), &key, Some("alice"))).await;
    assert_eq!(first.status_code, 202);
    let reused = |response: &ApiGatewayV2httpResponse| {
        assert_eq!(response.status_code, 422, "{:?}", response.body);
        assert_eq!(
            body_json(response)["type"],
            "urn:longrun:problem:idempotency-key-reused"
        );
    };
    reused(&handle(&f.deps, post(&with_then(sleep_steps(2)), &key, Some("alice"))).await);
    reused(&handle(&f.deps, post(SLEEP, &key, Some("alice"))).await);
    let replay = handle(&f.deps, post(&with_then(sleep_steps(1)), &key, Some("alice"))).await;
    assert_eq!(replay.status_code, 200, "the same then replays");

    let key = [("Idempotency-Key", "hook-1")];
    let first = handle(&f.deps, post(&sleep_calling_back(PUBLIC_HOOK), &key, Some("alice"))).await;
    assert_eq!(first.status_code, 202, "{:?}", first.body);
    let other = "https://1.1.1.1/hooks/other";
    reused(&handle(&f.deps, post(&sleep_calling_back(other), &key, Some("alice"))).await);
    reused(&handle(&f.deps, post(SLEEP, &key, Some("alice"))).await);
    let replay = handle(&f.deps, post(&sleep_calling_back(PUBLIC_HOOK), &key, Some("alice"))).await;
    assert_eq!(replay.status_code, 200);
    assert_eq!(f.store.len(), 2, "one record per key");
}
