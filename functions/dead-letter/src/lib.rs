//! The dead-letter function: SQS-triggered on the dead-letter queues.
//!
//! A message lands in a DLQ after `maxReceiveCount` receives: its job
//! crashed every time, or it was poison. For a message that names a job, the
//! job becomes DEAD_LETTERED with the reason (receives, queue, last error)
//! unless a live worker still holds it or it has already ended — and only
//! in the generation the message was sent in: a stale or duplicate dead
//! letter from before an operator's redrive ([`JobMessage::generation`]) leaves
//! the redriven job alone. A job whose owner asked to cancel, and that no
//! worker holds, ends CANCELLED instead: a cancel request wins. A message
//! that names no job is kept: written with its body and attributes to
//! `dead-letters/<queue>/<message_id>.json` in the jobs bucket and logged,
//! then acknowledged, so nothing is lost and nothing loops. Redrive with
//! `longrun-admin` (see docs/operations.md).

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use longrun_aws::AwsClients;
use longrun_core::bytes::Bytes;
use longrun_core::ports::{JobMessage, JobQueue, JobStore, ObjectError, ObjectStore, StoreError, Transition};
use longrun_core::record::{codes, JobError};
use longrun_core::time::now_ms;
use longrun_core::webhook::announce_end;
use longrun_core::Config;
use longrun_lambda::{batch_failures, SqsFunction};
use tracing::Instrument;

/// What the dead-letter function needs; built once per process.
#[derive(Clone)]
pub struct DeadLetterDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// Job inputs and results.
    pub objects: Arc<dyn ObjectStore>,
    /// Only to announce an end to the webhook queue before writing it.
    pub queue: Arc<dyn JobQueue>,
}

impl DeadLetterDeps {
    /// The production wiring over the process's AWS clients.
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        DeadLetterDeps {
            store: clients.job_store(&config),
            objects: clients.object_store(&config),
            queue: clients.job_queue(&config),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl SqsFunction for DeadLetterDeps {
    async fn call(&self, event: SqsEvent, _context: &lambda_runtime::Context) -> SqsBatchResponse {
        handle(self, event).await
    }
}

/// Why a dead letter could not be handled; it comes back and is tried again.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The job record could not be read or marked.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The end could not be announced to the webhook queue (so it is not written).
    #[error("could not announce the end: {0}")]
    Announce(#[from] longrun_core::ports::QueueError),
    /// A message that names no job could not be kept in the bucket.
    #[error("could not keep the message: {0}")]
    Keep(#[from] ObjectError),
}

/// Handles one batch from a dead-letter queue.
pub async fn handle(deps: &DeadLetterDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut failed = Vec::new();
    for message in &event.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        if let Err(err) = process(deps, message).await {
            tracing::error!(%message_id, error = %err, "dead letter not handled; it will come back");
            failed.push(message_id);
        }
    }
    batch_failures(failed)
}

fn queue_name(message: &SqsMessage) -> String {
    message
        .event_source_arn
        .as_deref()
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or("unknown-queue")
        .to_owned()
}

async fn process(deps: &DeadLetterDeps, message: &SqsMessage) -> Result<(), DeadLetterError> {
    let body = message.body.as_deref().unwrap_or("");
    let Ok(job_message) = serde_json::from_str::<JobMessage>(body) else {
        return keep(deps, message, "the message is not a job message").await;
    };
    let span = tracing::info_span!("dead_letter", job_id = %job_message.job_id);
    async {
        let receives = message
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_else(|| "?".into());
        let job = deps.store.get(&job_message.job_id).await?;
        let Some(job) = job else {
            return keep(deps, message, "the message names no job").await;
        };
        if job.generation != job_message.generation {
            tracing::info!(
                message_generation = job_message.generation,
                job_generation = job.generation,
                "dead letter from before a redrive; the redriven job is left alone"
            );
            return Ok(());
        }
        let now = now_ms();
        let last_error = job
            .error
            .as_ref()
            .map(|e| format!("; last error: {}: {}", e.code, e.message))
            .unwrap_or_default();
        let error = JobError::permanent(
            codes::DEAD_LETTERED,
            format!(
                "moved to {} after {receives} receives (crashed or timed out every time){last_error}",
                queue_name(message)
            ),
        );
        if job.dead_letterable_at(now) || job.cancel_pending_at(now) {
            announce_end(deps.queue.as_ref(), &job, now).await?;
        }
        match deps.store.dead_letter(&job.id, &error, job_message.generation, now).await? {
            Transition::Done(_) => tracing::warn!(%receives, "job dead-lettered"),
            // The store refuses a job with a cancel request: a cancel wins.
            Transition::Refused(current) if current.cancel_pending_at(now) => return cancel(deps, &job.id, now).await,
            Transition::Refused(current) => {
                tracing::info!(status = %current.status, "dead letter for a job that is live, ended or redriven; left as it is")
            }
            Transition::NotFound => return keep(deps, message, "the message names no job").await,
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// Ends a job whose owner asked to cancel and that no worker holds.
async fn cancel(deps: &DeadLetterDeps, id: &longrun_core::JobId, now: i64) -> Result<(), DeadLetterError> {
    let outcome = deps.store.request_cancel(id, now).await?;
    tracing::info!(
        ?outcome,
        "dead letter for a job with a cancel request; cancelled instead"
    );
    Ok(())
}

/// Keeps a message that names no job: logged with its body and stored.
async fn keep(deps: &DeadLetterDeps, message: &SqsMessage, why: &str) -> Result<(), DeadLetterError> {
    let message_id = message.message_id.clone().unwrap_or_else(|| body_digest_name(message));
    let key = format!("dead-letters/{}/{message_id}.json", queue_name(message));
    let record = serde_json::json!({
        "reason": why,
        "message_id": message.message_id,
        "body": message.body,
        "attributes": message.attributes,
        "event_source_arn": message.event_source_arn,
        "kept_at_ms": now_ms(),
    });
    tracing::error!(%key, body = ?message.body, reason = why, "poison message kept");
    deps.objects
        .put(&key, Bytes::from(record.to_string()), "application/json")
        .await?;
    Ok(())
}

/// A name for a message that has no id, from the MD5 of its body.
fn body_digest_name(message: &SqsMessage) -> String {
    format!("no-id-{}", message.md5_of_body.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_core::memory::{MemoryJobStore, MemoryObjectStore};
    use longrun_core::ports::JobLifecycle;
    use longrun_core::record::Lease;
    use longrun_core::{JobId, JobRecord, JobStatus};
    use serde_json::json;

    struct Fixture {
        deps: DeadLetterDeps,
        store: Arc<MemoryJobStore>,
        objects: Arc<MemoryObjectStore>,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryJobStore::new());
        let objects = Arc::new(MemoryObjectStore::new());
        Fixture {
            deps: DeadLetterDeps {
                config: Arc::new(longrun_core::fixtures::config(&[])),
                store: store.clone(),
                objects: objects.clone(),
                queue: Arc::new(longrun_core::memory::MemoryJobQueue::new(&["fast", "webhooks"])),
            },
            store,
            objects,
        }
    }

    fn job(f: &Fixture) -> JobRecord {
        let job = longrun_core::fixtures::queued_job("alice", "sleep", json!({"seconds": 1}));
        f.store.insert(job.clone());
        job
    }

    fn message(id: &str, body: &str) -> SqsMessage {
        serde_json::from_value(json!({
            "messageId": id,
            "receiptHandle": "r",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "6"},
            "eventSourceARN": "arn:aws:sqs:us-east-1:1:longrun-FastDeadLetterQueue",
        }))
        .unwrap()
    }

    fn for_job(job: &JobRecord) -> SqsMessage {
        message("m1", &json!({"job_id": job.id, "enqueued_at": 0}).to_string())
    }

    fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages;
        event
    }

    #[tokio::test]
    async fn a_crashed_job_is_marked_dead_lettered_with_the_reason() {
        let f = fixture();
        let mut crashed = job(&f);
        crashed.error = Some(JobError::retryable(codes::HANDLER_PANICKED, "the job handler panicked"));
        f.store.insert(crashed.clone());
        let response = handle(&f.deps, batch(vec![for_job(&crashed)])).await;
        assert!(response.batch_item_failures.is_empty());
        let dead = f.store.get(&crashed.id).await.unwrap().unwrap();
        assert_eq!(dead.status, JobStatus::DeadLettered);
        let error = dead.error.unwrap();
        assert_eq!(error.code, codes::DEAD_LETTERED);
        assert!(error.message.contains("after 6 receives"), "{}", error.message);
        assert!(error.message.contains("handler_panicked"), "{}", error.message);
        assert!(dead.finished_at.is_some());
    }

    #[tokio::test]
    async fn a_job_with_a_live_lease_or_an_end_is_left_alone() {
        let f = fixture();
        let running = job(&f);
        f.store
            .claim(&running.id, &Lease::new(now_ms() + 60_000), now_ms())
            .await
            .unwrap();
        handle(&f.deps, batch(vec![for_job(&running)])).await;
        assert_eq!(
            f.store.get(&running.id).await.unwrap().unwrap().status,
            JobStatus::Running
        );
        assert!(f.objects.keys().is_empty());
    }

    #[tokio::test]
    async fn a_dead_letter_from_before_a_redrive_leaves_the_redriven_job_alone() {
        let f = fixture();
        let first = job(&f);
        let stale = for_job(&first);
        handle(&f.deps, batch(vec![stale.clone()])).await;
        assert_eq!(
            f.store.get(&first.id).await.unwrap().unwrap().status,
            JobStatus::DeadLettered
        );

        // The operator redrives it; the old message (or a duplicate of it)
        // reaches the dead-letter function again.
        let now = now_ms();
        f.store
            .requeue_dead_lettered(&first.id, now, now + 60_000)
            .await
            .unwrap();
        let redriven = f.store.get(&first.id).await.unwrap().unwrap();
        assert_eq!((redriven.status, redriven.generation), (JobStatus::Queued, 1));
        let response = handle(&f.deps, batch(vec![stale])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            f.store.get(&first.id).await.unwrap().unwrap().status,
            JobStatus::Queued,
            "a generation-0 dead letter must not end generation 1"
        );

        // A dead letter of the redriven generation still ends it.
        let current = JobMessage::for_job(&redriven, now);
        handle(
            &f.deps,
            batch(vec![message("m2", &serde_json::to_string(&current).unwrap())]),
        )
        .await;
        assert_eq!(
            f.store.get(&first.id).await.unwrap().unwrap().status,
            JobStatus::DeadLettered
        );
    }

    #[tokio::test]
    async fn a_job_with_a_cancel_request_ends_cancelled_not_dead_lettered() {
        let f = fixture();
        let mut queued = job(&f);
        queued.cancel_requested = true;
        f.store.insert(queued.clone());

        let crashed = job(&f);
        let now = now_ms();
        f.store
            .claim(&crashed.id, &Lease::new(now - 1_000), now - 2_000)
            .await
            .unwrap();
        f.store.request_cancel(&crashed.id, now - 1_500).await.unwrap();

        handle(&f.deps, batch(vec![for_job(&queued), for_job(&crashed)])).await;
        for id in [&queued.id, &crashed.id] {
            let ended = f.store.get(id).await.unwrap().unwrap();
            assert_eq!(ended.status, JobStatus::Cancelled, "{id}");
        }
    }

    #[tokio::test]
    async fn poison_is_kept_with_its_body_not_lost() {
        let f = fixture();
        let unknown = json!({"job_id": JobId::random(), "enqueued_at": 0}).to_string();
        let response = handle(&f.deps, batch(vec![message("p1", "{garbage"), message("p2", &unknown)])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            f.objects.keys(),
            [
                "dead-letters/longrun-FastDeadLetterQueue/p1.json",
                "dead-letters/longrun-FastDeadLetterQueue/p2.json"
            ]
        );
        let kept: serde_json::Value = serde_json::from_slice(
            &f.objects
                .object("dead-letters/longrun-FastDeadLetterQueue/p1.json")
                .unwrap()
                .0,
        )
        .unwrap();
        assert_eq!(kept["body"], "{garbage");
        assert_eq!(kept["attributes"]["ApproximateReceiveCount"], "6");
    }
}
