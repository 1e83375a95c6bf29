//! The record's rules, as tables.

use super::*;
use serde_json::json;

fn queued(now: i64) -> JobRecord {
    crate::fixtures::queued_job_at("alice", "sleep", json!({"seconds": 1}), now)
}

#[test]
fn idempotency_key_ids_are_stable_and_owner_scoped() {
    let a = JobId::for_idempotency_key("alice", "k1");
    assert_eq!(a, JobId::for_idempotency_key("alice", "k1"));
    assert_ne!(a, JobId::for_idempotency_key("bob", "k1"));
    assert_ne!(a, JobId::for_idempotency_key("alice", "k2"));
    // Owner/key boundaries cannot be shifted to collide.
    assert_ne!(
        JobId::for_idempotency_key("ab", "c"),
        JobId::for_idempotency_key("a", "bc")
    );
    assert_eq!(JobId::parse(a.as_str()), Some(a.clone()));
    assert_eq!(a.created_ms(), None, "a derived id carries no time");
    let made = JobId::random().created_ms().unwrap();
    assert!((made - crate::time::now_ms()).abs() < 5_000, "{made}");
}

#[test]
fn parse_accepts_only_canonical_uuids() {
    assert!(JobId::parse("not-a-uuid").is_none());
    assert!(JobId::parse("").is_none());
    let id = JobId::random();
    assert!(JobId::parse(&id.as_str().to_uppercase()).is_none());
    assert_eq!(JobId::parse(id.as_str()), Some(id));
}

#[test]
fn status_round_trips_and_knows_terminal_states() {
    for status in JobStatus::ALL {
        assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, format!("\"{}\"", status.as_str()));
    }
    assert!(!JobStatus::Queued.is_terminal());
    assert!(!JobStatus::Running.is_terminal());
    assert!(JobStatus::Succeeded.is_terminal());
    assert!(JobStatus::DeadLettered.is_terminal());
    assert_eq!(JobStatus::parse("queued"), None);
}

#[test]
fn new_job_is_due_after_the_enqueue_grace_and_delay() {
    let job = queued(1_000_000);
    assert_eq!(job.status, JobStatus::Queued);
    assert_eq!(job.due_at, Some(1_060_000));
    assert_eq!(
        job.expires_at,
        1_000 + 3_600,
        "the record lives its retention from submit"
    );
    assert!(job.claimable_at(1_000_000));

    let mut delayed = job.clone();
    delayed.run_at = Some(2_000_000);
    assert!(!delayed.claimable_at(1_999_999));
    assert!(delayed.claimable_at(2_000_000));
}

#[test]
fn running_jobs_are_claimable_only_after_their_lease_expires() {
    let mut job = queued(0);
    job.status = JobStatus::Running;
    job.lease_token = Some("w1".into());
    job.lease_expires_at = Some(5_000);
    assert!(!job.claimable_at(5_000));
    assert!(job.claimable_at(5_001));
    assert!(job.is_leased_to("w1"));
    assert!(!job.is_leased_to("w2"));
    job.status = JobStatus::Succeeded;
    assert!(!job.claimable_at(i64::MAX));
}

#[test]
fn hash_ignores_key_order_but_not_values() {
    let a = json!({"type": "report", "input": {"a": 1, "b": [1, {"y": 2, "x": 1}]}});
    let b = json!({"input": {"b": [1, {"x": 1, "y": 2}], "a": 1}, "type": "report"});
    let c = json!({"input": {"b": [{"x": 1, "y": 2}, 1], "a": 1}, "type": "report"});
    assert_eq!(hash_json(&a), hash_json(&b));
    assert_ne!(hash_json(&a), hash_json(&c));
}

#[test]
fn job_error_messages_are_cut_short_on_a_char_boundary_wherever_they_come_from() {
    // 3 bytes then 2-byte characters: a plain byte cut would split one.
    let long = format!("abc{}", "é".repeat(100_000));
    let check = |message: &str| {
        assert!(message.len() <= MAX_ERROR_MESSAGE_BYTES, "{} bytes kept", message.len());
        assert!(message.len() >= MAX_ERROR_MESSAGE_BYTES - 4, "cut too short");
        assert!(message.starts_with("abcéé"));
        assert!(message.ends_with(TRUNCATION_MARKER));
    };
    check(&JobError::permanent("bad", long.clone()).message);
    check(&JobError::retryable("flaky", long.clone()).message);

    // Read back from a stored record.
    let stored = json!({"code": "bad", "message": long, "retryable": false});
    check(&serde_json::from_value::<JobError>(stored).unwrap().message);

    // Built field by field, it is still written and logged short.
    let literal = JobError {
        code: "bad".into(),
        message: long.clone(),
        retryable: false,
    };
    let written = serde_json::to_value(&literal).unwrap();
    check(written["message"].as_str().unwrap());
    let logged = literal.to_string();
    check(logged.strip_prefix("bad: ").unwrap());

    // Short messages pass untouched.
    let short = JobError::permanent("bad", "line 3: not a number");
    assert_eq!(short.message, "line 3: not a number");
    assert_eq!(short.to_string(), "bad: line 3: not a number");
    assert_eq!(shorten("abcdef", 6), "abcdef");
    assert_eq!(shorten("abcdef", 5), "ab…");
}
