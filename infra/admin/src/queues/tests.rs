//! Queue views: sampled depths, oldest ages and their rendering.

use super::*;

fn job(id: &str, queue: &str, status: &str, created_at: i64, run_at: Option<i64>) -> Sampled {
    Sampled {
        id: id.into(),
        queue: queue.into(),
        status: status.into(),
        created_at,
        updated_at: Some(created_at),
        run_at,
    }
}

#[test]
fn the_oldest_ready_queued_job_of_each_queue_gives_its_age() {
    let now = 1_000_000;
    let sampled = [
        job("a", "fast", "QUEUED", 990_000, None),
        job("b", "fast", "QUEUED", 900_000, None),
        // Running, or not ready until later: not waiting.
        job("c", "fast", "RUNNING", 100_000, None),
        job("d", "fast", "QUEUED", 100_000, Some(1_500_000)),
        // A retry waits from its run_at, not from its creation.
        job("e", "slow", "QUEUED", 100_000, Some(995_000)),
        // A redriven job waits from its redrive (updated_at).
        Sampled {
            updated_at: Some(999_000),
            ..job("f", "bulk", "QUEUED", 50_000, None)
        },
    ];
    let oldest = oldest_per_queue(&sampled, now);
    assert_eq!(oldest.len(), 3);
    assert_eq!(oldest["fast"].job_id, "b");
    assert_eq!((oldest["fast"].age_ms, oldest["fast"].age_seconds), (100_000, 100));
    assert_eq!(oldest["slow"].age_ms, 5_000);
    assert_eq!(oldest["bulk"].age_ms, 1_000);
    assert_eq!(oldest["fast"].waiting_since, rfc3339(900_000));
}

#[test]
fn ages_are_never_negative() {
    // A record written by a clock slightly ahead of ours.
    let oldest = oldest_per_queue(&[job("a", "fast", "QUEUED", 1_000_500, None)], 1_000_000);
    assert_eq!((oldest["fast"].age_ms, oldest["fast"].age_seconds), (0, 0));
}

#[test]
fn queues_are_classified_by_redrive_targets_and_names() {
    let queue = |logical: Option<&str>, name: Option<&str>| QueueRef {
        logical_id: logical.map(str::to_owned),
        name: name.map(str::to_owned),
        url: "http://q/x".into(),
    };
    let targets = vec!["arn:aws:sqs:r:1:x-dlq".to_owned()];
    assert_eq!(
        classify(&queue(None, None), Some("arn:aws:sqs:r:1:x-dlq"), &targets),
        Kind::DeadLetter
    );
    assert_eq!(
        classify(&queue(Some("FastDeadLetterQueue"), None), None, &[]),
        Kind::DeadLetter
    );
    assert_eq!(
        classify(&queue(None, Some(WEBHOOK_DEAD_LETTER_QUEUE)), None, &[]),
        Kind::DeadLetter
    );
    assert_eq!(classify(&queue(None, Some(WEBHOOK_QUEUE)), None, &[]), Kind::Webhook);
    assert_eq!(
        classify(
            &queue(Some("FastQueue"), Some("fast")),
            Some("arn:aws:sqs:r:1:f"),
            &targets
        ),
        Kind::Work
    );
    assert_eq!(
        redrive_target(r#"{"deadLetterTargetArn":"arn:aws:sqs:r:1:x-dlq","maxReceiveCount":6}"#).as_deref(),
        Some("arn:aws:sqs:r:1:x-dlq")
    );
    assert_eq!(redrive_target("nonsense"), None);
}

#[test]
fn the_table_says_how_ages_are_obtained() {
    let state = QueueState {
        queue: QueueRef {
            logical_id: Some("FastQueue".into()),
            name: Some("fast".into()),
            url: "http://q/s-FastQueue".into(),
        },
        kind: Kind::Work,
        arn: Some("arn:aws:sqs:r:1:s-FastQueue".into()),
        dead_letter_target: None,
        visible: Some(3),
        delayed: Some(0),
        in_flight: Some(1),
        error: None,
    };
    let oldest = oldest_per_queue(&[job("j1", "fast", "QUEUED", 988_000, None)], 1_000_000);
    let text = render(
        std::slice::from_ref(&state),
        &oldest,
        None,
        "local runtime x",
        20,
        1_000_000,
        false,
    );
    let row = text.lines().find(|l| l.starts_with("FastQueue (fast)")).unwrap();
    assert!(row.contains("work") && row.contains("12s (j1)"), "{row}");
    assert!(text.contains("from the jobs table, not SQS"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&render(&[state], &oldest, None, "x", 20, 1_000_000, true)).unwrap();
    let fast = &json["queues"][0];
    assert_eq!(
        (fast["name"].as_str(), fast["kind"].as_str(), fast["visible"].as_u64()),
        (Some("fast"), Some("work"), Some(3))
    );
    assert_eq!(fast["oldest_queued"]["age_seconds"], 12);
    assert!(json["age_method"].as_str().unwrap().contains("due"));
}
