//! Callbacks and webhook secrets.

use super::*;

#[tokio::test]
async fn a_callback_needs_the_callers_webhook_secret_then_is_stored_with_the_job() {
    let f = fixture();
    let body = sleep_calling_back(PUBLIC_HOOK);
    let refused = handle(&f.deps, post(&body, &[], Some("alice"))).await;
    assert_eq!(error_fields(&refused), ["callback_url"]);
    let message = body_json(&refused)["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("POST /webhook-secret"), "{message}");
    assert!(
        f.store.is_empty() && f.queue.sent().is_empty(),
        "nothing written or sent"
    );

    let made = handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    assert_eq!(made.status_code, 201, "{:?}", made.body);
    let accepted = handle(&f.deps, post(&body, &[], Some("alice"))).await;
    assert_eq!(accepted.status_code, 202, "{:?}", accepted.body);
    let id = JobId::parse(body_json(&accepted)["id"].as_str().unwrap()).unwrap();
    let job = f.store.get(&id).await.unwrap().unwrap();
    assert_eq!(job.callback, Some(Callback::new(PUBLIC_HOOK)));
    assert_eq!(f.queue.sent().len(), 1);

    let bob = handle(&f.deps, post(&body, &[], Some("bob"))).await;
    assert_eq!(error_fields(&bob), ["callback_url"], "a secret is its owner's only");
}

#[tokio::test]
async fn a_webhook_secret_is_answered_once_uncached_and_a_rotation_keeps_the_old_one_for_the_overlap() {
    let f = fixture();
    let first = handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    assert_eq!(first.status_code, 201, "{:?}", first.body);
    assert_eq!(first.headers["cache-control"], "no-store");
    let first = body_json(&first);
    let first_secret = first["secret"].as_str().unwrap().to_owned();
    assert!(first_secret.starts_with("whsec_"), "{first_secret}");
    assert!(longrun_core::webhook::signature::WebhookSecret::parse(&first_secret).is_ok());
    assert!(first.get("previous_valid_until").is_none(), "nothing replaced: {first}");

    let second = handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    assert_eq!(second.status_code, 201);
    assert_eq!(second.headers["cache-control"], "no-store");
    let second = body_json(&second);
    let second_secret = second["secret"].as_str().unwrap();
    assert!(second_secret.starts_with("whsec_"));
    assert_ne!(second_secret, first_secret, "a rotation makes a new secret");

    let stored = f.store.webhook_secrets(&owner("alice")).await.unwrap().unwrap();
    assert_eq!(stored.current, second_secret);
    assert_eq!(stored.previous.as_deref(), Some(first_secret.as_str()));
    let overlap_ms = f.deps.config.webhook_secret_overlap_seconds * 1000;
    assert_eq!(stored.previous_valid_until, Some(stored.created_at + overlap_ms));
    assert_eq!(
        second["previous_valid_until"].as_str(),
        Some(longrun_core::time::rfc3339(stored.created_at + overlap_ms).as_str())
    );
    assert!(f.store.webhook_secrets(&owner("bob")).await.unwrap().is_none());
    let anonymous = handle(&f.deps, webhook_secret_request(None)).await;
    assert_eq!(anonymous.status_code, 401);
}

#[tokio::test]
async fn with_the_switch_off_callbacks_to_plain_http_or_internal_addresses_are_refused() {
    let f = fixture();
    assert!(!f.deps.config.webhook_allow_insecure_targets);
    handle(&f.deps, webhook_secret_request(Some("alice"))).await;
    for url in [
        "http://1.1.1.1/hooks",
        "https://127.0.0.1/",
        "https://[::ffff:10.0.0.1]/",
        "https://169.254.169.254/",
    ] {
        let refused = handle(&f.deps, post(&sleep_calling_back(url), &[], Some("alice"))).await;
        assert_eq!(error_fields(&refused), ["callback_url"], "{url}");
    }
    assert!(f.store.is_empty() && f.queue.sent().is_empty());
    let public = handle(&f.deps, post(&sleep_calling_back(PUBLIC_HOOK), &[], Some("alice"))).await;
    assert_eq!(
        public.status_code, 202,
        "a public https target passes: {:?}",
        public.body
    );
}
