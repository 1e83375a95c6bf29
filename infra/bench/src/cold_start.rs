//! Cold starts: every function binary started as Lambda starts it, against
//! a stub of the Lambda Runtime API served by this process, next to the
//! `lambda_runtime` hello world built with the same profile.
//!
//! One cold start of one binary:
//!
//! - **Init**: from spawning the process to its first
//!   `GET /runtime/invocation/next` (what Lambda reports as Init duration:
//!   tracing, configuration, SDK clients, everything before the first event);
//! - **first invoke**: from handing it its first event to its answer. The
//!   events make the calls a real first request makes (submit: a PutItem and
//!   a SendMessage to the emulator; status: a GetItem …), so work deferred out
//!   of Init shows up here instead of vanishing.
//!
//! The binaries run one at a time, interleaved round by round, with the
//! environment Lambda gives (the template's variables, `AWS_LAMBDA_*`,
//! credentials in the environment, no `HOME`), so the hello world and the
//! functions see the same machine state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc;

/// What the stub saw, and when.
#[derive(Debug)]
enum Mark {
    /// The first `GET /next` of the current process.
    Next(Instant),
    /// Its answer to the first event.
    Answered(Instant),
    /// An invocation or init error, with the body the function posted.
    Failed(String),
}

struct StubState {
    event: Mutex<Vec<u8>>,
    handed_out: AtomicBool,
    marks: mpsc::UnboundedSender<Mark>,
}

async fn next(State(state): State<Arc<StubState>>) -> Response {
    if state.handed_out.swap(true, Ordering::SeqCst) {
        // The process asks for its second event: it never gets one (it is killed).
        std::future::pending::<()>().await;
    }
    let _ = state.marks.send(Mark::Next(Instant::now()));
    let event = state.event.lock().unwrap().clone();
    let deadline = longrun_core::time::now_ms() + 60_000;
    (
        [
            ("lambda-runtime-aws-request-id", "cold-start-0000".to_owned()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:cold-start".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        event,
    )
        .into_response()
}

async fn answered(State(state): State<Arc<StubState>>, _headers: HeaderMap, _body: Bytes) -> Response {
    let _ = state.marks.send(Mark::Answered(Instant::now()));
    axum::http::StatusCode::ACCEPTED.into_response()
}

async fn failed(State(state): State<Arc<StubState>>, body: Bytes) -> Response {
    let _ = state
        .marks
        .send(Mark::Failed(String::from_utf8_lossy(&body).into_owned()));
    axum::http::StatusCode::ACCEPTED.into_response()
}

/// One binary to start cold, with its environment and first event.
pub struct Target {
    /// The name in the report (the template's logical id, or `hello world`).
    pub name: String,
    /// The executable.
    pub binary: PathBuf,
    /// Its environment besides what every Lambda process gets.
    pub environment: BTreeMap<String, String>,
    /// The first event it is handed.
    pub event: serde_json::Value,
    /// What answering that event does, for the report.
    pub first_invoke: &'static str,
}

/// The stub Runtime API on a local port, and what it reports.
pub struct Stub {
    address: String,
    state: Arc<StubState>,
    marks: mpsc::UnboundedReceiver<Mark>,
}

impl Stub {
    /// Serves the Runtime API routes on a free local port.
    pub async fn start() -> Stub {
        let (tx, marks) = mpsc::unbounded_channel();
        let state = Arc::new(StubState {
            event: Mutex::new(Vec::new()),
            handed_out: AtomicBool::new(false),
            marks: tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(answered))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
            .route("/2018-06-01/runtime/init/error", post(failed))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stub");
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { address, state, marks }
    }

    /// Starts `target` cold and answers (Init, first invoke).
    pub async fn run(&mut self, target: &Target) -> (Duration, Duration) {
        *self.state.event.lock().unwrap() = serde_json::to_vec(&target.event).unwrap();
        self.state.handed_out.store(false, Ordering::SeqCst);
        while self.marks.try_recv().is_ok() {}
        let mut command = tokio::process::Command::new(&target.binary);
        command
            .env_clear()
            .envs(&target.environment)
            .envs(lambda_environment(&target.name, &self.address))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", target.binary.display()));
        let next_at = match self.next_mark(&mut child, &target.name, "Init").await {
            Mark::Next(at) => at,
            other => panic!("{}: no first /next ({other:?})", target.name),
        };
        let answered_at = match self.next_mark(&mut child, &target.name, "its first invoke").await {
            Mark::Answered(at) => at,
            other => panic!("{}: no answer to its first event ({other:?})", target.name),
        };
        let _ = child.kill().await;
        (next_at - started, answered_at - next_at)
    }

    /// The next mark of `name`'s process during `phase`, within 30 s; a
    /// failure it posted, its exit or the time running out panics.
    async fn next_mark(&mut self, child: &mut tokio::process::Child, name: &str, phase: &str) -> Mark {
        tokio::select! {
            mark = tokio::time::timeout(Duration::from_secs(30), self.marks.recv()) => match mark {
                Ok(Some(Mark::Failed(body))) => panic!("{name}: {phase} failed: {body}"),
                Ok(Some(mark)) => mark,
                other => panic!("{name}: no mark during {phase} ({other:?})"),
            },
            status = child.wait() => panic!("{name}: exited during {phase} ({status:?})"),
        }
    }
}

/// What Lambda sets in every function's environment (and nothing else:
/// no `HOME`, credentials in the environment).
fn lambda_environment(name: &str, runtime_api: &str) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/cold-start"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/23/[$LATEST]cold-start"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("TZ", ":UTC"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    ] {
        if let Ok(value) = std::env::var(name) {
            vars.push((name.to_owned(), value));
        }
    }
    vars
}

/// Median of `values`.
fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts every target cold `rounds` times, interleaved (round by round,
/// each round in the same order), and prints the Markdown table. The first
/// target is the reference the ratios are taken against.
pub async fn measure(targets: &[Target], rounds: usize) {
    let mut stub = Stub::start().await;
    // One unmeasured start each, so every binary is in the page cache.
    for target in targets {
        stub.run(target).await;
    }
    let mut init: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    let mut invoke: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    let mut total: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    for _ in 0..rounds {
        for (i, target) in targets.iter().enumerate() {
            let (a, b) = stub.run(target).await;
            init[i].push(a);
            invoke[i].push(b);
            total[i].push(a + b);
        }
    }
    let reference_init = ms(median(&mut init[0].clone()));
    let reference_total = ms(median(&mut total[0].clone()));
    println!("### Cold start ({rounds} interleaved rounds, stub Runtime API, release builds)\n");
    println!("Init = process start → first `GET /runtime/invocation/next`; first invoke = that event handed out → its answer posted (its AWS calls go to the emulator). Medians; ratios against the hello world.\n");
    println!("| binary | Init p50 ms | Init min–max ms | × hello Init | first invoke p50 ms | Init + first invoke p50 ms | × hello | first invoke does |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, target) in targets.iter().enumerate() {
        let init_median = ms(median(&mut init[i]));
        let invoke_median = ms(median(&mut invoke[i]));
        let total_median = ms(median(&mut total[i]));
        println!(
            "| {} | {init_median:.2} | {:.2}–{:.2} | {:.2}× | {invoke_median:.2} | {total_median:.2} | {:.2}× | {} |",
            target.name,
            ms(init[i][0]),
            ms(*init[i].last().unwrap()),
            init_median / reference_init,
            total_median / reference_total,
            target.first_invoke,
        );
    }
    println!();
}
