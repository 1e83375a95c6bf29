//! Worker's unit tests, over the in-memory adapters.

mod bounds;
mod chains;
mod heartbeats;
mod leases;
mod limits;
mod runs;

use super::*;
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::JobLifecycle;
pub(crate) use longrun_core::record::JobError;
pub(crate) use longrun_core::JobId;
use serde_json::{json, Value};

const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:longrun-fast";

struct Fixture {
    deps: WorkerDeps,
    store: Arc<MemoryJobStore>,
    queue: Arc<MemoryJobQueue>,
    objects: Arc<MemoryObjectStore>,
}

fn fixture() -> Fixture {
    let config = Arc::new(longrun_core::fixtures::config(&[
        ("PROGRESS_INTERVAL_MS", "0"),
        ("RETRY_BASE_SECONDS", "4"),
        ("RETRY_MAX_SECONDS", "60"),
    ]));
    let store = Arc::new(MemoryJobStore::new());
    let queue = Arc::new(MemoryJobQueue::new(&["fast", "slow"]));
    let objects = Arc::new(MemoryObjectStore::new());
    let deps = WorkerDeps {
        registry: Arc::new(longrun_jobs::standard(&config)),
        store: store.clone(),
        queue: queue.clone(),
        objects: objects.clone(),
        config,
    };
    Fixture {
        deps,
        store,
        queue,
        objects,
    }
}

/// A key under the input prefix of `alice`, the owner of the fixture's jobs.
fn alice_input(name: &str) -> String {
    format!("{}{name}", longrun_core::access::input_prefix("alice"))
}

fn add_job(f: &Fixture, job_type: &str, input: Value, max_attempts: u32) -> JobRecord {
    let mut job = longrun_core::fixtures::queued_job("alice", job_type, input);
    job.max_attempts = max_attempts;
    f.store.insert(job.clone());
    job
}

fn message(id: &str, body: &str) -> SqsMessage {
    serde_json::from_value(json!({
        "messageId": id,
        "receiptHandle": format!("receipt-{id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1"
    }))
    .unwrap()
}

fn job_message(job: &JobRecord, message_id: &str) -> SqsMessage {
    let body = serde_json::to_string(&JobMessage::for_job(job, now_ms())).unwrap();
    message(message_id, &body)
}

fn event(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

fn context(seconds_left: i64) -> lambda_runtime::Context {
    let mut context = lambda_runtime::Context::default();
    context.deadline = (now_ms() + seconds_left * 1000) as u64;
    context
}

/// Changes the stored job `ms` milliseconds from now, as another party would
/// while the worker runs it (a cancel request, a takeover).
fn change_later(f: &Fixture, job: &JobRecord, ms: u64, change: impl FnOnce(&mut JobRecord) + Send + 'static) {
    let store = f.store.clone();
    let id = job.id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let mut current = store.get(&id).await.unwrap().unwrap();
        change(&mut current);
        store.insert(current);
    });
}

fn failures(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn reload(f: &Fixture, job: &JobRecord) -> JobRecord {
    f.store.get(&job.id).await.unwrap().unwrap()
}

/// A job that never reports progress: it only polls its stop signal. As
/// `silent_then_fail` it ignores the signal and fails retryably at the end;
/// as `deaf` it ignores the signal and succeeds at the end.
struct SilentJob(&'static str);

#[longrun_core::async_trait]
impl longrun_core::job_types::JobHandler for SilentJob {
    fn job_type(&self) -> &'static str {
        self.0
    }
    fn validate(&self, _: &Value) -> Result<(), Vec<longrun_core::api::FieldError>> {
        Ok(())
    }
    async fn run(&self, ctx: &JobContext, input: &Value) -> Result<Vec<longrun_core::ResultObject>, JobError> {
        let until = tokio::time::Instant::now() + Duration::from_secs_f64(input["seconds"].as_f64().unwrap());
        while tokio::time::Instant::now() < until {
            if self.0 == "silent" {
                ctx.ensure_running()?;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.0 {
            "silent" | "deaf" => Ok(Vec::new()),
            _ => Err(JobError::retryable("flaky", "failed after ignoring the stop signal")),
        }
    }
}

fn heartbeat_fixture() -> Fixture {
    let mut f = fixture();
    f.deps.config = Arc::new(longrun_core::fixtures::config(&[
        ("LEASE_SECONDS", "2"),
        ("HEARTBEAT_SECONDS", "1"),
    ]));
    let mut registry = longrun_jobs::standard(&f.deps.config);
    registry.register(Arc::new(SilentJob("silent")));
    registry.register(Arc::new(SilentJob("silent_then_fail")));
    registry.register(Arc::new(SilentJob("deaf")));
    f.deps.registry = Arc::new(registry);
    f
}
