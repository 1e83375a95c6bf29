//! Contract tests: the same cases against the in-memory adapters and the
//! AWS adapters on the emulator (DynamoDB, S3, SQS), so the fakes the unit
//! tests trust behave like the real thing.
//!
//! The AWS half is `#[ignore]`d for a plain `cargo test`; `make test` runs it
//! against the emulator with `LONGRUN_JOBS_TABLE` and `LONGRUN_JOBS_BUCKET`
//! naming resources created from `template.yaml`.

use std::sync::Arc;
use std::time::Duration;

use longrun_aws::{AwsClients, DynamoJobStore, S3ObjectStore, SqsJobQueue};
use longrun_core::bytes::Bytes;
use longrun_core::chain::{next_step, ChainLink, ChainStep};
use longrun_core::memory::{MemoryJobQueue, MemoryJobStore, MemoryObjectStore};
use longrun_core::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, JobMessage, JobQueue, JobStore, MessageCounts, ObjectError,
    ObjectStore, QueueError, SlotOutcome, StoreError, StreamTicket, Transition,
};
use longrun_core::record::{Callback, Finish, JobError, Lease, ProgressUpdate};
use longrun_core::time::now_ms;
use longrun_core::webhook::signature::WebhookSecret;
use longrun_core::webhook::WebhookSecrets;
use longrun_core::{JobId, JobRecord, JobStatus, ResultObject};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// How long the stores under test keep an ended record: not the hour a new
/// record starts with, so every TTL written at an ending shows whose it is.
const RETENTION_SECONDS: i64 = 7200;

fn new_job(now: i64) -> JobRecord {
    let mut job = longrun_core::fixtures::queued_job_at(
        "contract",
        "sleep",
        json!({"seconds": 1, "nested": {"list": [1, 2.5, "x"]}}),
        now,
    );
    job.request_hash = "hash-1".into();
    job
}

fn claimed(outcome: ClaimOutcome) -> JobRecord {
    match outcome {
        ClaimOutcome::Claimed(job) => *job,
        other => panic!("expected a claim, got {other:?}"),
    }
}

mod cases;

macro_rules! contract {
    (stores: $($store_case:ident),*; objects: $($object_case:ident),*; queues: $($queue_case:ident),*) => {
        mod memory {
            $(#[tokio::test]
            async fn $store_case() {
                super::cases::$store_case(&super::MemoryJobStore::with_retention(super::RETENTION_SECONDS)).await;
            })*
            $(#[tokio::test]
            async fn $object_case() {
                super::cases::$object_case(&super::MemoryObjectStore::new()).await;
            })*
            $(#[tokio::test]
            async fn $queue_case() {
                super::cases::$queue_case(&super::MemoryJobQueue::new(&["fast"])).await;
            })*
        }
        mod on_emulator {
            $(#[tokio::test]
            #[ignore = "needs the emulator: make test"]
            async fn $store_case() {
                let _one_at_a_time = super::aws_adapters::EMULATOR_STORE.lock().await;
                super::cases::$store_case(&*super::aws_adapters::job_store().await).await;
            })*
            $(#[tokio::test]
            #[ignore = "needs the emulator: make test"]
            async fn $object_case() {
                super::cases::$object_case(&*super::aws_adapters::object_store().await).await;
            })*
            $(#[tokio::test]
            #[ignore = "needs the emulator: make test"]
            async fn $queue_case() {
                super::cases::$queue_case(&*super::aws_adapters::job_queue().await).await;
            })*
        }
    };
}

/// The cases that need a store with owner quotas on, on both adapters.
mod with_owner_quotas {
    macro_rules! with_quotas {
        ($($case:ident),*) => {
            mod memory {
                $(#[tokio::test]
                async fn $case() {
                    let store = super::super::MemoryJobStore::with_retention(super::super::RETENTION_SECONDS).with_owner_quotas();
                    super::super::cases::$case(&store).await;
                })*
            }
            mod on_emulator {
                $(#[tokio::test]
                #[ignore = "needs the emulator: make test"]
                async fn $case() {
                    let _one_at_a_time = super::super::aws_adapters::EMULATOR_STORE.lock().await;
                    let store = super::super::aws_adapters::job_store_with_quotas(true).await;
                    super::super::cases::$case(&*store).await;
                })*
            }
        };
    }

    with_quotas!(
        an_end_sent_again_after_a_lost_answer_is_recognised_and_releases_its_slot,
        a_retry_sent_again_after_a_lost_answer_is_recognised_until_the_job_is_claimed,
        a_cancel_or_dead_letter_sent_again_is_recognised_and_releases_its_slot,
        a_redriven_job_takes_a_quota_slot_again_and_its_end_gives_it_back
    );

    #[tokio::test]
    async fn a_chain_holds_one_quota_slot_from_step_to_step_in_memory() {
        let store = super::MemoryJobStore::with_retention(super::RETENTION_SECONDS).with_owner_quotas();
        super::cases::a_chain_holds_one_quota_slot_from_step_to_step(&store).await;
    }

    #[tokio::test]
    #[ignore = "needs the emulator: make test"]
    async fn a_chain_holds_one_quota_slot_from_step_to_step_on_emulator() {
        let _one_at_a_time = super::aws_adapters::EMULATOR_STORE.lock().await;
        let store = super::aws_adapters::job_store_with_quotas(true).await;
        super::cases::a_chain_holds_one_quota_slot_from_step_to_step(&*store).await;
    }
}

/// The AWS adapters, on the resources `make test` names.
mod aws_adapters {
    use super::*;

    /// The store cases run one at a time on the emulator: moto undoes a
    /// failed TransactWriteItems by restoring each table it touched as it
    /// was before the transaction, which drops any write another case made
    /// to that table meanwhile (DynamoDB and DynamoDB Local do not). The chain cases make such
    /// transactions on purpose (a cancel request, a lost lease).
    pub(crate) static EMULATOR_STORE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the contract tests through `make test`"))
    }

    pub(crate) async fn job_store() -> Arc<DynamoJobStore> {
        job_store_with_quotas(false).await
    }

    /// The job store, releasing (and handing on) quota slots when `quotas`.
    pub(crate) async fn job_store_with_quotas(quotas: bool) -> Arc<DynamoJobStore> {
        let clients = AwsClients::load().await;
        Arc::new(
            DynamoJobStore::new(clients.dynamodb, &env("LONGRUN_JOBS_TABLE"), RETENTION_SECONDS)
                .with_owner_quotas(quotas),
        )
    }

    pub(crate) async fn object_store() -> Arc<S3ObjectStore> {
        let clients = AwsClients::load().await;
        Arc::new(S3ObjectStore::new(clients.s3, &env("LONGRUN_JOBS_BUCKET")))
    }

    /// A queue of the test's own, so the running workers never see its messages.
    pub(crate) async fn job_queue() -> Arc<SqsJobQueue> {
        job_queue_and_url().await.0
    }

    /// [`job_queue`], its SQS client and its URL (to receive from it directly).
    pub(crate) async fn job_queue_and_url() -> (Arc<SqsJobQueue>, aws_sdk_sqs::Client, String) {
        let clients = AwsClients::load().await;
        let name = format!("longrun-contract-{}", uuid::Uuid::new_v4());
        let url = clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("create a contract queue")
            .queue_url
            .expect("queue url");
        let queue = Arc::new(SqsJobQueue::new(
            clients.sqs.clone(),
            [("fast".to_owned(), url.clone())].into_iter().collect(),
        ));
        (queue, clients.sqs, url)
    }
}

/// SQS alone (the memory queue has no receives): a received message leaves
/// `depth` and counts in flight until it is deleted.
#[tokio::test]
#[ignore = "needs the emulator: make test"]
async fn a_received_message_counts_in_flight_until_deleted() {
    let (queue, sqs, url) = aws_adapters::job_queue_and_url().await;
    for n in 0..2 {
        let message = JobMessage {
            job_id: JobId::random(),
            enqueued_at: n,
            generation: 0,
            limit: None,
        };
        queue.enqueue("fast", &message, 0).await.unwrap();
    }
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(received.len(), 1);
    let counts = queue.message_counts("fast").await.unwrap();
    assert_eq!(
        (queue.depth("fast").await.unwrap(), counts.waiting, counts.in_flight),
        (1, 1, 1)
    );
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(received[0].receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(queue.message_counts("fast").await.unwrap().total(), 1);
}

/// DynamoDB alone (the memory store has one way to keep a record): a
/// record written before the owner index was sharded (its owner in `owner`,
/// no `owner_shard`) is listed with the new ones, in order.
#[tokio::test]
#[ignore = "needs the emulator: make test"]
async fn a_record_of_before_the_sharded_index_is_listed_with_the_new_ones() {
    use longrun_core::ports::JobLifecycle;
    let store = aws_adapters::job_store().await;
    let clients = AwsClients::load().await;
    let owner = format!("legacy-{}", uuid::Uuid::new_v4());
    let now = now_ms();
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut job = longrun_core::fixtures::queued_job_at(&owner, "sleep", serde_json::json!({}), now + i);
        job.owner = owner.clone();
        store.create(&job, now).await.unwrap();
        ids.push(job.id);
    }
    // The middle one as the code of before wrote it.
    clients
        .dynamodb
        .update_item()
        .table_name(std::env::var("LONGRUN_JOBS_TABLE").unwrap())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(ids[1].to_string()))
        .update_expression("SET #owner = :owner REMOVE owner_id, owner_shard")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_values(":owner", aws_sdk_dynamodb::types::AttributeValue::S(owner.clone()))
        .send()
        .await
        .unwrap();
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_by_owner(&owner, None, 1, cursor.as_deref()).await.unwrap();
        seen.extend(page.jobs.iter().map(|j| (j.id.clone(), j.owner.clone())));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let wanted: Vec<(JobId, String)> = ids.into_iter().map(|id| (id, owner.clone())).collect();
    assert_eq!(seen, wanted);
}

contract! {
    stores:
        create_is_conditional_and_returns_the_existing_record,
        an_expired_record_is_replaced,
        a_claim_takes_the_lease_once,
        a_delayed_job_is_claimable_only_when_due,
        an_expired_lease_is_taken_over_and_fences_the_old_holder,
        progress_and_checkpoints_are_written_under_the_lease,
        success_ends_the_run_and_leaves_the_due_index,
        a_retry_requeues_until_run_at,
        a_failure_keeps_its_coded_error,
        a_continuation_requeues_without_using_an_attempt_and_may_move_queue,
        heartbeats_extend_the_lease_under_fencing,
        cancel_ends_queued_jobs_and_flags_running_ones,
        dead_lettering_spares_live_and_ended_jobs,
        claim_and_dead_letter_conditions_follow_the_record_rules,
        overdue_jobs_are_found_and_deferred_once,
        overdue_jobs_are_found_in_every_shard,
        owner_slots_are_exact_idempotent_and_bounded,
        owners_list_their_own_jobs_newest_first_in_pages,
        pages_over_many_jobs_and_equal_times_give_each_job_once_in_order,
        a_cursor_only_pages_for_the_owner_it_was_handed_to,
        a_callback_update_applies_only_over_the_state_read,
        webhook_secrets_are_made_once_and_rotated_over_the_ones_read,
        stream_tickets_are_found_by_hash_until_they_expire,
        counts_in_a_window_are_exact_per_owner_counter_and_window,
        open_streams_are_capped_per_owner_and_ticket_exactly_and_given_back,
        a_limit_s_slots_are_exact_under_concurrent_takers_and_go_to_the_oldest_waiter,
        schedules_are_capped_per_owner_exactly_under_concurrent_creates,
        a_schedule_is_written_only_at_the_version_read_and_read_back_whole,
        schedules_page_oldest_first_for_their_owner_only,
        a_schedule_is_due_from_its_next_tick_less_the_look_ahead_and_never_while_paused,
        a_step_that_succeeds_creates_its_next_step_in_the_same_write,
        a_step_asked_to_cancel_succeeds_without_its_next_step,
        a_step_that_lost_its_lease_creates_no_next_step,
        a_chain_started_again_under_the_same_id_creates_its_own_steps;
    objects: objects_stream_back_byte_for_byte;
    queues: unknown_queues_are_refused, depth_counts_waiting_and_delayed_messages
}
