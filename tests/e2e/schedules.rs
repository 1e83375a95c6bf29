//! Recurring schedules through the API and the scheduler pass of the local
//! runtime (`SchedulerSchedule=rate(1 second)` and
//! `ScheduleMinIntervalSeconds=1` in the test overrides: parameters, not a
//! test-only path): one job per tick, pause without ticks, resume without
//! backfill, overlap skipped, and every bad request a problem.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use longrun_core::time::{now_ms, parse_rfc3339};
use longrun_e2e::Stack;
use serde_json::{json, Value};

async fn create(stack: &Stack, body: Value) -> Value {
    let answer = stack.call("POST", "/schedules", Some(&body), None).await;
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    assert!(answer.header("location").unwrap().starts_with("/schedules/sch_"));
    answer.body
}

async fn schedule(stack: &Stack, id: &str) -> Value {
    let answer = stack.call("GET", &format!("/schedules/{id}"), None, None).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body
}

/// The schedule's recent runs, oldest first.
async fn runs(stack: &Stack, id: &str) -> Vec<Value> {
    let mut runs = schedule(stack, id).await["recent_runs"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

async fn wait_for_runs(stack: &Stack, id: &str, count: usize, limit: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let runs = runs(stack, id).await;
        if runs.len() >= count {
            return runs;
        }
        assert!(
            started.elapsed() < limit,
            "{id}: {} runs after {limit:?}: {runs:?}",
            runs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn at(value: &Value) -> i64 {
    parse_rfc3339(value.as_str().unwrap()).unwrap()
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn a_schedule_makes_one_job_per_tick_stops_when_paused_and_resumes_without_backfill() {
    let stack = Stack::from_env().await;
    let created = create(
        &stack,
        json!({"name": "every two seconds", "rate": "2 seconds", "overlap": "allow",
               "job": {"type": "sleep", "input": {"seconds": 0.1}}}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let fires: Vec<i64> = created["next_fire_times"].as_array().unwrap().iter().map(at).collect();
    assert_eq!(fires.len(), 5);
    assert!(fires.windows(2).all(|w| w[1] - w[0] == 2_000), "{fires:?}");
    let ran = wait_for_runs(&stack, id, 3, Duration::from_secs(30)).await;
    let mut jobs = BTreeSet::new();
    for run in &ran[..3] {
        assert_eq!(run["outcome"], "submitted", "{run}");
        let job_id = run["job_id"].as_str().unwrap();
        assert!(jobs.insert(job_id.to_owned()), "one job per tick: {ran:?}");
        let done = stack.wait_terminal(job_id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_eq!(done["schedule_id"].as_str(), Some(id), "the job names its schedule");
        assert_eq!(done["schedule_tick_at"], run["tick_at"]);
        let late = at(&done["started_at"]) - at(&run["tick_at"]);
        println!("tick {} started {late} ms after it", run["tick_at"]);
        assert!(late >= 0, "never before its tick: {done}");
    }
    let ticks: Vec<i64> = ran.iter().map(|r| at(&r["tick_at"])).collect();
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == 2_000),
        "ticks on the rate's grid: {ticks:?}"
    );

    let path = format!("/schedules/{id}");
    let paused = stack.call("PATCH", &path, Some(&json!({"paused": true})), None).await;
    assert_eq!(paused.status, 200, "{:?}", paused.body);
    assert_eq!(paused.body["next_fire_times"], json!([]));
    let at_pause = runs(&stack, id).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_pause = runs(&stack, id).await;
    assert_eq!(
        after_pause.len(),
        at_pause.len(),
        "no tick while paused: {after_pause:?}"
    );
    for run in &after_pause {
        if let Some(job_id) = run["job_id"].as_str() {
            // A tick made ahead of the pause was cancelled, never run.
            let view = stack.wait_terminal(job_id, Duration::from_secs(30)).await;
            assert!(
                matches!(view["status"].as_str(), Some("SUCCEEDED" | "CANCELLED")),
                "{view}"
            );
        }
    }

    let resumed_at = now_ms();
    let resumed = stack.call("PATCH", &path, Some(&json!({"paused": false})), None).await;
    assert_eq!(resumed.status, 200, "{:?}", resumed.body);
    let more = wait_for_runs(&stack, id, after_pause.len() + 1, Duration::from_secs(30)).await;
    let first_after = at(&more[after_pause.len()]["tick_at"]);
    assert!(
        first_after > resumed_at - 1_000,
        "no backfill of the ticks missed while paused: first tick after resume {first_after}, resumed {resumed_at}"
    );
    let deleted = stack.call("DELETE", &path, None, None).await;
    assert_eq!(deleted.status, 204, "{:?}", deleted.body);
    assert_eq!(stack.call("GET", &path, None, None).await.status, 404);
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn with_overlap_skip_no_two_jobs_of_a_schedule_run_at_once() {
    let stack = Stack::from_env().await;
    let created = create(
        &stack,
        json!({"rate": "1 second", "job": {"type": "sleep", "input": {"seconds": 2.5}}}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let started = Instant::now();
    let ran = loop {
        let ran = runs(&stack, id).await;
        let submitted = ran.iter().filter(|r| r["outcome"] == "submitted").count();
        let skipped = ran.iter().filter(|r| r["outcome"] == "skipped").count();
        if submitted >= 2 && skipped >= 1 {
            break ran;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "{ran:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    stack.call("DELETE", &format!("/schedules/{id}"), None, None).await;
    let mut spans = Vec::new();
    for job_id in ran.iter().filter_map(|r| r["job_id"].as_str()) {
        let done = stack.wait_terminal(job_id, Duration::from_secs(30)).await;
        if done["status"] == "SUCCEEDED" {
            spans.push((at(&done["started_at"]), at(&done["finished_at"])));
        }
    }
    spans.sort();
    assert!(spans.len() >= 2, "{spans:?}");
    assert!(spans.windows(2).all(|w| w[1].0 >= w[0].1), "runs overlapped: {spans:?}");
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn bad_schedules_are_problems_and_another_callers_schedule_is_not_found() {
    let stack = Stack::from_env().await;
    let job = json!({"type": "sleep", "input": {"seconds": 0}});
    // (request, the field at fault)
    let table = [
        (json!({"cron": "61 * * * *", "job": job}), "cron"),
        (
            json!({"cron": "0 3 * * *", "timezone": "Europe/Nowhere", "job": job}),
            "timezone",
        ),
        (
            json!({"cron": "0 3 * * *", "start_at": "2031-01-02T00:00:00Z", "end_at": "2031-01-01T00:00:00Z", "job": job}),
            "end_at",
        ),
        (json!({"rate": "5 minutes", "cron": "0 3 * * *", "job": job}), "cron"),
        (
            json!({"rate": "5 minutes", "job": {"type": "no-such-type", "input": {}}}),
            "job.type",
        ),
    ];
    for (body, field) in table {
        let answer = stack.call("POST", "/schedules", Some(&body), None).await;
        assert_eq!(answer.status, 422, "{body}: {:?}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
        let fields: Vec<&str> = answer.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {fields:?}");
    }
    let not_json = stack.call("POST", "/schedules", Some(&json!("a string")), None).await;
    assert_eq!(not_json.status, 422, "{:?}", not_json.body);
    let mine = create(
        &stack,
        json!({"cron": "0 3 * * *", "timezone": "Europe/Berlin", "job": job}),
    )
    .await;
    let path = format!("/schedules/{}", mine["id"].as_str().unwrap());
    for method in ["GET", "PATCH", "DELETE"] {
        let answer = stack
            .call(method, &path, Some(&json!({"paused": true})), Some("someone-else"))
            .await;
        assert_eq!(answer.status, 404, "{method}: {:?}", answer.body);
    }
    assert_eq!(stack.call("DELETE", &path, None, None).await.status, 204);
}

fn admin(stack: &Stack, args: &[&str]) -> (bool, String) {
    let bin = std::env::var("LONGRUN_ADMIN_BIN").expect("LONGRUN_ADMIN_BIN");
    let output = std::process::Command::new(bin)
        .args(["--local", &stack.api])
        .args(args)
        .output()
        .expect("run longrun-admin");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[tokio::test]
#[ignore = "needs the emulator and the local runtime: make test"]
async fn an_operator_lists_every_owners_schedules_and_pauses_and_resumes_one() {
    let stack = Stack::from_env().await;
    let job = json!({"type": "sleep", "input": {"seconds": 0}});
    let created = create(
        &stack,
        json!({"cron": "*/5 * * * *", "timezone": "Asia/Tokyo", "job": job}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let (ok, listed) = admin(&stack, &["schedules", "--owner", &stack.owner_key(), "--json"]);
    assert!(ok, "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let rows = listed["schedules"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(
        (rows[0]["id"].as_str(), rows[0]["owner"].as_str()),
        (Some(id), Some(stack.owner_key().as_str()))
    );
    let (ok, all) = admin(&stack, &["schedules", "--limit", "1000"]);
    assert!(ok && all.contains(id), "the scan finds it among every owner's: {all}");
    let (ok, paused) = admin(&stack, &["pause-schedule", id]);
    assert!(ok && paused.contains("paused"), "{paused}");
    let view = schedule(&stack, id).await;
    assert_eq!(
        (
            view["paused"].as_bool(),
            view["next_fire_times"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    let (ok, resumed) = admin(&stack, &["resume-schedule", id]);
    assert!(ok && resumed.contains("resumed"), "{resumed}");
    assert_eq!(schedule(&stack, id).await["paused"], false);
    let (ok, missing) = admin(&stack, &["pause-schedule", "sch_00000000000000000000000000000000"]);
    assert!(!ok && missing.contains("no such schedule"), "{missing}");
    stack.call("DELETE", &format!("/schedules/{id}"), None, None).await;
}
