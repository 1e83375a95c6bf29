//! Soak: a few hundred jobs of mixed outcomes while the runtime is killed
//! (`kill -9`) and restarted at random moments, every restart with
//! transient DynamoDB and SQS faults injected into the worker, reconciler
//! and dead-letter functions ([`FAULTS`]). Afterwards every job is terminal
//! with the outcome its kind must have (store faults never use up an
//! attempt or walk a job to the DLQ), none is lost, none completed twice,
//! and no result object changed after its job ended. The counts are printed
//! and written to `LONGRUN_SOAK_REPORT` when set (`make test` shows them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use longrun_e2e::{LocalRuntime, Stack};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Succeeds,
    FailsOnceThenSucceeds,
    FailsPermanently,
    Report,
    AlwaysCrashes,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 10 {
            0..=3 => Kind::Succeeds,
            4 | 5 => Kind::FailsOnceThenSucceeds,
            6 => Kind::FailsPermanently,
            7 | 8 => Kind::Report,
            _ => Kind::AlwaysCrashes,
        }
    }

    fn body(self, i: usize) -> Value {
        // Long enough (2–5 s) that the kills land while many jobs run, even
        // with a worker running its whole batch at once.
        let seconds = 2.0 + (i % 7) as f64 * 0.5;
        match self {
            Kind::Succeeds => json!({"type": "sleep", "input": {"seconds": seconds}}),
            Kind::FailsOnceThenSucceeds => {
                json!({"type": "sleep", "input": {"seconds": seconds, "fail": "retryable", "fail_attempts": 1}})
            }
            Kind::FailsPermanently => json!({"type": "sleep", "input": {"seconds": seconds, "fail": "permanent"}}),
            Kind::Report => json!({"type": "report", "input": {
                "source": {"csv": format!("g,v\na,{i}\nb,2\na,3\n")}, "group_by": ["g"], "values": ["v"]}}),
            Kind::AlwaysCrashes => {
                json!({"type": "sleep", "input": {"seconds": 0, "fail": "panic", "fail_attempts": 1000}})
            }
        }
    }

    fn expected(self) -> &'static [&'static str] {
        match self {
            Kind::Succeeds | Kind::FailsOnceThenSucceeds | Kind::Report => &["SUCCEEDED"],
            Kind::FailsPermanently => &["FAILED"],
            // DEAD_LETTERED through the DLQ; or, when kills made the reconciler
            // re-send it (a new message, a new receive count), FAILED too_many_crashes.
            Kind::AlwaysCrashes => &["DEAD_LETTERED", "FAILED"],
        }
    }
}

/// The faults every restarted runtime injects: a share of the functions'
/// DynamoDB and SQS calls fail before they are sent, as in an outage.
const FAULTS: &[&str] = &[
    "WorkerFunction:UpdateItem=0.05",
    "WorkerFunction:SendMessage=0.05",
    "WorkerFunction:ChangeMessageVisibility=0.1",
    "ReconcilerFunction:Query=0.2",
    "ReconcilerFunction:UpdateItem=0.1",
    "DeadLetterFunction:GetItem=0.1",
    "DeadLetterFunction:UpdateItem=0.1",
];

#[tokio::test]
#[ignore = "needs the emulator and LONGRUN_LOCAL_BIN: make test"]
async fn hundreds_of_jobs_survive_random_worker_kills_and_store_faults() {
    let jobs: usize = std::env::var("LONGRUN_SOAK_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let kills: usize = std::env::var("LONGRUN_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // A longer enqueue grace than the other tests: the backlog itself must not look overdue.
    // No quota of active jobs: the soak submits all 200 as one owner up front.
    let grace = [
        "--parameter-overrides",
        "EnqueueGraceSeconds=30 MaxActiveJobsPerOwner=0",
    ];
    let mut runtime = LocalRuntime::start("longrun-soak", &grace).await;
    let mut faulty: Vec<&str> = FAULTS.iter().flat_map(|rule| ["--fault", rule]).collect();
    faulty.extend(grace);
    let stack = Stack::local(&runtime).await;
    let mut submitted: Vec<(String, Kind)> = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let kind = Kind::of(i);
        submitted.push((stack.submit_ok(&kind.body(i)).await, kind));
    }
    let owner = stack.owner.clone();

    // Kill and restart at pseudo-random moments while the jobs run,
    // counting the kills that certainly hit a run (a job seen RUNNING just
    // before): each of those must end in a takeover.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut kills_mid_run = 0;
    for _ in 0..kills {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(1_500 + seed % 2_000)).await;
        let mut current = Stack::local(&runtime).await;
        current.owner = owner.clone();
        let mut running = None;
        for (id, kind) in &submitted {
            if *kind != Kind::AlwaysCrashes && current.job(id).await["status"] == "RUNNING" {
                running = Some(id.clone());
                break;
            }
        }
        runtime.kill();
        runtime.restart_with(&faulty).await;
        // Seen RUNNING before the kill, it may have ended just before it; still
        // RUNNING once the new process is up (sooner than the dead run's
        // lease expires), the kill certainly left it to a takeover.
        if let Some(id) = running {
            let mut after = Stack::local(&runtime).await;
            after.owner = owner.clone();
            kills_mid_run += usize::from(after.job(&id).await["status"] == "RUNNING");
        }
    }

    let mut stack = Stack::local(&runtime).await;
    stack.owner = owner;
    let started = Instant::now();
    let mut outcomes: BTreeMap<String, Value> = BTreeMap::new();
    // The result objects of each job as they were when it was first seen ended.
    let mut results_at_end: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    while outcomes.len() < submitted.len() {
        for (id, _) in &submitted {
            if outcomes.contains_key(id) {
                continue;
            }
            let view = stack.job(id).await;
            if !matches!(view["status"].as_str(), Some("QUEUED") | Some("RUNNING")) {
                results_at_end.insert(id.clone(), stack.result_etags(id).await);
                outcomes.insert(id.clone(), view);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{} of {} jobs still not terminal after 300 s",
            submitted.len() - outcomes.len(),
            submitted.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Completions per job, from every run's logs: a SUCCEEDED transition is logged once, when written.
    let mut completions: BTreeMap<String, usize> = BTreeMap::new();
    for event in runtime.log_events() {
        if event["message"] == "job ended" && event["status"] == "SUCCEEDED" {
            if let Some(id) = event["span"]["job_id"].as_str() {
                *completions.entry(id.to_owned()).or_default() += 1;
            }
        }
    }

    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut taken_over = 0;
    for (id, kind) in &submitted {
        let view = &outcomes[id];
        let status = view["status"].as_str().unwrap().to_owned();
        assert!(
            kind.expected().contains(&status.as_str()),
            "job {id} ({kind:?}) ended {status}: {view}"
        );
        let done = completions.get(id).copied().unwrap_or(0);
        assert!(done <= 1, "job {id} completed {done} times");
        if status == "SUCCEEDED" {
            assert!(!results_at_end[id].is_empty(), "job {id} SUCCEEDED without results");
        }
        assert_eq!(
            stack.result_etags(id).await,
            results_at_end[id],
            "job {id}: its result objects changed after it ended"
        );
        if *kind != Kind::AlwaysCrashes {
            // Kills are takeovers and store faults are passed on: neither uses an attempt.
            let attempts_expected = 1 + u64::from(*kind == Kind::FailsOnceThenSucceeds);
            assert_eq!(
                view["attempts"].as_u64(),
                Some(attempts_expected),
                "job {id} ({kind:?}) used attempts on kills or faults: {view}"
            );
        }
        if view["takeovers"].as_u64().unwrap_or(0) > 0 {
            taken_over += 1;
        }
        *by_status.entry(status).or_default() += 1;
    }
    assert!(
        kills_mid_run == 0 || taken_over > 0,
        "{kills_mid_run} kills hit a running job, yet no job was taken over"
    );
    let report = format!(
        "soak: {} jobs, {kills} kill -9 + restarts with injected store faults, {:.0} s to drain after the last restart; outcomes {:?}; \
         lost 0, completed twice 0, {taken_over} jobs taken over after a kill ({kills_mid_run} kills hit a run)",
        submitted.len(),
        started.elapsed().as_secs_f64(),
        by_status
    );
    println!("{report}");
    if let Ok(path) = std::env::var("LONGRUN_SOAK_REPORT") {
        std::fs::write(path, format!("{report}\n")).unwrap();
    }
}
