//! Tests that need the local runtime itself, not just a stack's API: they
//! kill it, inject faults into it, redrive through `longrun-admin --local`,
//! or check what it created on the emulator. `make test` runs them; against
//! LocalStack or AWS, skip them with `--skip local_only::`.

use std::time::{Duration, Instant};

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

#[path = "local_only_soak.rs"]
mod soak;

#[path = "local_only_backlog.rs"]
mod backlog;

#[path = "local_only_limits.rs"]
mod limits;

#[path = "local_only_schedule.rs"]
mod schedule;

#[path = "local_only_promotion.rs"]
mod promotion;

#[path = "local_only_resume.rs"]
mod resume;

#[path = "local_only_cors.rs"]
mod cors;

#[path = "local_only_browser.rs"]
pub(crate) mod browser;

#[path = "local_only_dashboard.rs"]
mod dashboard;

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn a_job_that_always_crashes_is_dead_lettered_without_hurting_others_and_can_be_redriven() {
    let stack = Stack::from_env().await;
    // It panics on every attempt it gets (6: maxReceiveCount is 6).
    // The fast queue's batches of 5 mix it with the others.
    let crasher = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0, "fail": "panic", "fail_attempts": 6}}))
        .await;
    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(
            stack
                .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0.2}}))
                .await,
        );
    }
    for id in &others {
        let done = stack.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(
            (done["status"].as_str(), done["attempts"].as_u64()),
            (Some("SUCCEEDED"), Some(1))
        );
    }
    let dead = stack.wait_terminal(&crasher, Duration::from_secs(120)).await;
    assert_eq!(dead["status"], "DEAD_LETTERED", "{dead}");
    assert_eq!(dead["error"]["code"], "dead_lettered");
    let reason = dead["error"]["message"].as_str().unwrap();
    assert!(reason.contains("handler_panicked"), "{reason}");
    assert_eq!(dead["attempts"], 6, "one attempt per receive until the redrive policy");

    // Redrive: the operator requeues it; it gets a fresh life (and, code unchanged, dies again).
    let admin = std::env::var("LONGRUN_ADMIN_BIN").expect("LONGRUN_ADMIN_BIN");
    let api = std::env::var("LONGRUN_API_URL").unwrap();
    let output = std::process::Command::new(admin)
        .args(["--local", &api, "requeue", &crasher])
        .output()
        .expect("run longrun-admin");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("requeued"));
    let again = stack.job(&crasher).await;
    assert!(
        matches!(again["status"].as_str(), Some("QUEUED") | Some("RUNNING")),
        "{again}"
    );
    let second = stack.wait_terminal(&crasher, Duration::from_secs(120)).await;
    assert_eq!(second["status"], "DEAD_LETTERED", "{second}");
    assert_eq!(second["attempts"], 6, "a fresh count of attempts");
    assert!(
        second["finished_at"].as_str() > dead["finished_at"].as_str(),
        "a second life: {} then {}",
        dead["finished_at"],
        second["finished_at"]
    );
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_worker_killed_mid_job_is_taken_over_and_the_job_completes_once() {
    let mut runtime = LocalRuntime::start("longrun-kill", &[]).await;
    let stack = Stack::local(&runtime).await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 6}}))
        .await;
    stack
        .wait_until(&id, Duration::from_secs(30), |v| {
            v["status"] == "RUNNING" && v["progress"].as_u64().unwrap_or(0) >= 20
        })
        .await;
    runtime.kill();
    runtime.restart().await;
    let mut stack = stack;
    stack.api = runtime.api.clone();
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(
        (done["attempts"].as_u64(), done["takeovers"].as_u64()),
        (Some(1), Some(1)),
        "taken over once, which uses no attempt"
    );
    let keys = stack.result_keys(&id).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("results/{id}/")) && keys[0].ends_with("/sleep.json"),
        "{keys:?}"
    );
    let body: Value = serde_json::from_slice(&stack.download(done["result_url"].as_str().unwrap()).await).unwrap();
    assert!(
        body["resumed_from_ms"].as_u64().unwrap() > 0,
        "resumed from its checkpoint: {body}"
    );
    let successes = runtime
        .log_events()
        .iter()
        .filter(|e| e["message"] == "job ended" && e["status"] == "SUCCEEDED")
        .count();
    assert_eq!(successes, 1, "one SUCCEEDED transition");
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_send_that_fails_after_the_put_is_recovered_by_the_reconciler() {
    let runtime = LocalRuntime::start("longrun-fault", &["--fault", "SubmitFunction:SendMessage"]).await;
    let stack = Stack::local(&runtime).await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 0}}))
        .await;
    assert_eq!(stack.job(&id).await["status"], "QUEUED");
    let done = stack.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_u64()),
        (Some("SUCCEEDED"), Some(1))
    );
    let log = runtime.log_text();
    assert!(log.contains("injected fault"), "the send really failed");
    assert!(log.contains("re-enqueued an overdue job"), "the reconciler sent it");
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn a_setting_changed_in_the_template_changes_the_local_stack() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let settings = [
        "--no-workers",
        "--parameter-overrides",
        "FastQueueVisibilityTimeout=420",
        "MaxReceiveCount=5",
        "MaxAttemptsLimit=4",
    ];
    let mut runtime = LocalRuntime::start("longrun-template", &settings).await;
    let stack = Stack::local(&runtime).await;
    let attributes = |stack: &Stack| {
        let sqs = stack.sqs.clone();
        let url = stack.fast_queue_url.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes
                .unwrap()
        }
    };
    let queue = attributes(&stack).await;
    assert_eq!(queue[&QueueAttributeName::VisibilityTimeout], "420");
    let redrive: Value = serde_json::from_str(&queue[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), "5");
    assert!(redrive["deadLetterTargetArn"]
        .as_str()
        .unwrap()
        .ends_with("FastDeadLetterQueue"));
    let environment: Value = reqwest::get(format!("{}/_local/environment/SubmitFunction", runtime.api))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(environment["MAX_ATTEMPTS_LIMIT"], "4");
    let table = stack
        .dynamodb
        .describe_table()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let mut indexes: Vec<String> = table
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name().map(str::to_owned))
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["by-owner", "by-owner-shard", "due"]);

    // Started again with another value, the existing queue follows the template.
    runtime
        .restart_with(&[
            "--no-workers",
            "--parameter-overrides",
            "FastQueueVisibilityTimeout=480",
        ])
        .await;
    assert_eq!(attributes(&stack).await[&QueueAttributeName::VisibilityTimeout], "480");
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn a_deep_queue_refuses_new_work_with_503_until_it_drains_and_loses_nothing() {
    // No workers at first, a limit of 3 waiting jobs on the fast queue, and
    // a depth read on every submit.
    let limits = ["--parameter-overrides", "FastQueueMaxDepth=3 QueueDepthSampleMs=0"];
    let mut paused = vec!["--no-workers"];
    paused.extend(limits);
    let mut runtime = LocalRuntime::start("longrun-busy", &paused).await;
    let stack = Stack::local(&runtime).await;
    let owner = stack.owner.clone();
    let job = json!({"type": "sleep", "input": {"seconds": 0.2}});
    let mut accepted = Vec::new();
    for i in 0..3 {
        let answer = stack.submit(&job, Some(&format!("busy-{i}"))).await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        accepted.push(answer.body["id"].as_str().unwrap().to_owned());
    }
    let refused = stack.submit(&job, Some("busy-3")).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert_eq!(refused.body["type"], "urn:longrun:problem:busy");
    let retry_after: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    // A replay of accepted work is answered, not refused.
    let replay = stack.submit(&job, Some("busy-0")).await;
    assert_eq!(
        (replay.status, replay.body["id"].as_str()),
        (200, Some(accepted[0].as_str()))
    );

    // Workers come back: the queue drains, the accepted jobs all finish, and
    // submits are accepted again.
    runtime.restart_with(&limits).await;
    let mut stack = Stack::local(&runtime).await;
    stack.owner = owner;
    for id in &accepted {
        let done = stack.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
    }
    let started = std::time::Instant::now();
    let again = loop {
        let answer = stack.submit(&job, Some("busy-3")).await;
        if answer.status != 503 || started.elapsed() > Duration::from_secs(60) {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(again.status, 202, "accepted once the queue drained: {:?}", again.body);
    let id = again.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        stack.wait_terminal(&id, Duration::from_secs(60)).await["status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn a_hundred_concurrent_submits_against_a_quota_of_ten_accept_exactly_ten() {
    // No workers during the burst, so no job ends (and frees its slot) in it.
    let quota = ["--parameter-overrides", "MaxActiveJobsPerOwner=10"];
    let mut paused = vec!["--no-workers"];
    paused.extend(quota);
    let mut runtime = LocalRuntime::start("longrun-quota", &paused).await;
    let stack = std::sync::Arc::new(Stack::local(&runtime).await);
    // Four kinds, so that the accepted ones end every way a job can end.
    let kind = |i: usize| i % 4;
    let body = |i: usize| match kind(i) {
        0 => json!({"type": "sleep", "input": {"seconds": 0.5}}),
        1 => json!({"type": "sleep", "input": {"seconds": 0.5, "fail": "permanent"}}),
        2 => json!({"type": "sleep", "input": {"seconds": 30}}),
        _ => json!({"type": "sleep", "input": {"seconds": 0, "fail": "panic", "fail_attempts": 100}}),
    };
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let stack = stack.clone();
            let body = body(i);
            tokio::spawn(async move { (i, stack.submit(&body, None).await) })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let accepted: Vec<(usize, String)> = answers
        .iter()
        .filter(|(_, a)| a.status == 202)
        .map(|(i, a)| (*i, a.body["id"].as_str().unwrap().to_owned()))
        .collect();
    let refused: Vec<_> = answers.iter().filter(|(_, a)| a.status == 429).collect();
    assert_eq!(
        (accepted.len(), refused.len()),
        (10, 90),
        "statuses: {:?}",
        answers.iter().map(|(_, a)| a.status).collect::<Vec<_>>()
    );
    assert!(refused
        .iter()
        .all(|(_, a)| a.header("retry-after").is_some() && a.body["type"] == "urn:longrun:problem:quota-exceeded"));
    assert_eq!(
        stack.active_slots(&stack.owner).await.len(),
        10,
        "the set holds the accepted jobs"
    );
    // The operator sees the same.
    let admin = std::env::var("LONGRUN_ADMIN_BIN").expect("LONGRUN_ADMIN_BIN");
    let output = std::process::Command::new(admin)
        .args(["--local", &runtime.api, "usage", &stack.owner_key()])
        .output()
        .expect("run longrun-admin");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        printed.contains(&format!("{}: 10 active of 10", stack.owner_key())),
        "{printed}"
    );
    assert!(
        accepted.iter().all(|(_, id)| printed.contains(id.as_str())),
        "{printed}"
    );

    // Another owner is unaffected.
    let mut other = Stack::local(&runtime).await;
    other.owner = format!("{}-other", stack.owner);
    let quick = json!({"type": "sleep", "input": {"seconds": 0}});
    assert_eq!(other.submit(&quick, None).await.status, 202);

    // Workers come back.
    runtime.restart_with(&quota).await;
    let mut stack = Stack::local(&runtime).await;
    stack.owner = other.owner.trim_end_matches("-other").to_owned();

    // The long sleepers are cancelled; the others succeed, fail, or crash
    // their way to the dead-letter queue. Then the owner holds no slot.
    for (i, id) in &accepted {
        if kind(*i) == 2 {
            assert_eq!(stack.cancel(id).await.status, 202);
        }
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for (_, id) in &accepted {
        let done = stack.wait_terminal(id, Duration::from_secs(120)).await;
        *outcomes.entry(done["status"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        stack.active_slots(&stack.owner).await,
        Vec::<String>::new(),
        "every slot given back; outcomes {outcomes:?}"
    );
    assert_eq!(stack.submit(&quick, None).await.status, 202);
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn a_high_priority_job_overtakes_a_backlog_of_low_priority_ones() {
    let runtime = LocalRuntime::start(
        "longrun-priority",
        &[
            "--parameter-overrides",
            "MaxActiveJobsPerOwner=0 BulkWorkerMaxConcurrency=2",
        ],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let low = json!({"type": "sleep", "priority": "low", "input": {"seconds": 0.3}});
    let mut backlog = Vec::new();
    for _ in 0..200 {
        backlog.push(stack.submit_ok(&low).await);
    }
    let urgent = stack
        .submit_ok(&json!({"type": "sleep", "priority": "high", "input": {"seconds": 0.1}}))
        .await;
    let done = stack.wait_terminal(&urgent, Duration::from_secs(60)).await;
    assert_eq!(
        (done["status"].as_str(), done["queue"].as_str()),
        (Some("SUCCEEDED"), Some("urgent"))
    );
    // Counted by finish time, not by status at the time of the count: the
    // backlog keeps draining while the 200 reads are made. Both times are
    // RFC 3339 in UTC with milliseconds, so they compare as text.
    let urgent_finished = done["finished_at"]
        .as_str()
        .expect("a finished job has finished_at")
        .to_owned();
    let mut finished = 0;
    for id in &backlog {
        let job = stack.job(id).await;
        if job["finished_at"]
            .as_str()
            .is_some_and(|at| at < urgent_finished.as_str())
        {
            finished += 1;
        }
    }
    // Two bulk workers at 0.3 s a job need half a minute for the backlog;
    // the high job waits behind none of it.
    assert!(
        finished < 100,
        "{finished} of 200 low jobs finished before the high one"
    );
    let first = stack.job(&backlog[0]).await;
    assert_eq!(
        (first["priority"].as_str(), first["queue"].as_str()),
        (Some("low"), Some("bulk"))
    );
}

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn streams_over_the_events_functions_reserved_concurrency_are_throttled() {
    let runtime = LocalRuntime::start(
        "longrun-streams",
        &["--no-workers", "--parameter-overrides", "EventsMaxConcurrency=2"],
    )
    .await;
    let stack = Stack::local(&runtime).await;
    let id = stack
        .submit_ok(&json!({"type": "sleep", "input": {"seconds": 30}}))
        .await;
    let ticket = stack
        .http
        .post(format!("{}/jobs/{id}/stream", stack.api))
        .bearer_auth(stack.token())
        .send()
        .await
        .unwrap();
    assert_eq!(ticket.status().as_u16(), 201);
    let url = ticket.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let open = || stack.http.get(&url).send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open().await.unwrap();
    assert_eq!(third.status().as_u16(), 429, "over EventsMaxConcurrency: throttled");
    // A stream that ends gives its invocation back.
    drop(first);
    let started = Instant::now();
    loop {
        let again = open().await.unwrap();
        if again.status().as_u16() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(second);
}
