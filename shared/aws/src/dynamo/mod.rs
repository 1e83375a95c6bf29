//! [`JobStore`] on DynamoDB: one item per job, partition key `pk` = job id.
//! Every write is a single conditional request; a failed condition returns
//! the old item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) so callers
//! learn why without a second read. Non-terminal jobs carry `due_shard` and
//! `due_at`, the keys of the sparse index the reconciler scans; the index is
//! spread over [`DUE_SHARDS`] partition keys ([`due_shard`]) so that the
//! writes of claims, heartbeats and finishes do not all land on one
//! partition of the index.
//!
//! The item codec lives in [`item`], list pages over the sharded owner index in [`owner_list`], and every
//! update is written with the [`expr::Update`] builder.

mod expr;
mod item;
mod lifecycle;
mod limits;
mod owner_list;
mod owners;
mod schedules;
mod streams;

use self::owners::quota_key;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use self::expr::Update;
use self::item::{n, s, Attributes, Item};
use super::describe;
use longrun_core::ports::{JobLifecycle, QuotaSlots, StoreError, Transition};
use longrun_core::record::{JobId, JobRecord, JobStatus};

/// How many partition keys the sparse due index is spread over: one per
/// hex digit a job id can end with (the random or hashed end of its UUID).
/// A GSI partition takes about 1,000 writes/s; see docs/costs-and-capacity.md.
pub const DUE_SHARDS: usize = 16;

/// The due index's partition key for job `id`: `due-<last hex digit of the
/// id>`, `due-0` … `due-f`. Stable for the life of the job, spread evenly.
pub fn due_shard(id: &JobId) -> String {
    let last = id.as_str().chars().last().unwrap_or('0');
    format!("due-{last}")
}

/// Every partition key of the due index, in order; the reconciler reads them all.
pub fn due_shards() -> impl Iterator<Item = String> {
    "0123456789abcdef".chars().map(|digit| format!("due-{digit}"))
}
/// The name of the sparse due index (`due_shard`, `due_at`) in `template.yaml`.
pub const DUE_INDEX: &str = "due";
/// The name of the owner index (`owner_shard`, `created_at`) in `template.yaml`.
pub const OWNER_INDEX: &str = "by-owner-shard";
/// The owner index of before it was sharded (`owner`, `created_at`): it
/// holds only records written before (new ones carry no `owner`
/// attribute), and lists read it too until those records have expired.
pub const LEGACY_OWNER_INDEX: &str = "by-owner";
/// How many partition keys each owner's jobs are spread over in the owner
/// index, so one owner's writes are not bound by one index partition.
pub const OWNER_SHARDS: usize = 16;

/// The owner index's partition key for `owner`'s job `id`: the owner, `#`,
/// and the last hex digit of the id (as [`due_shard`]).
pub fn owner_shard(owner: &str, id: &JobId) -> String {
    let last = id.as_str().chars().last().unwrap_or('0');
    format!("{owner}#{last}")
}

/// Every partition key of `owner`'s jobs in the owner index.
pub fn owner_shards(owner: &str) -> impl Iterator<Item = String> + '_ {
    "0123456789abcdef".chars().map(move |digit| format!("{owner}#{digit}"))
}

/// When a worker may start a queued job: the first half of
/// [`JobRecord::claimable_at`] (`longrun-core`'s `record`), the one home of the
/// rule; [`TAKEOVER`] is the other half. The two conditions must stay equal
/// to it, and the contract tests hold them to it. `attribute_exists(pk)`
/// makes a missing job fail without an old item, which tells "not found"
/// from "not claimable".
const CLAIMABLE_QUEUED: &str = "attribute_exists(pk) AND #status = :queued \
    AND (attribute_not_exists(#run_at) OR #run_at <= :now) AND #cancel_requested = :false";

/// When a worker may take over a running job whose lease expired: the second
/// half of [`JobRecord::claimable_at`].
const TAKEOVER: &str = "#status = :running AND #lease_expires_at < :now AND #cancel_requested = :false";

/// When a cancel request ends a job at once: [`JobRecord::unheld_at`].
const UNHELD: &str = "#status = :queued OR (#status = :running AND #lease_expires_at < :now)";

/// When the dead-letter function may end a job. The one home of this rule is
/// [`JobRecord::dead_letterable_at`] (`longrun-core`'s `record`); this condition
/// must stay equal to it, and the contract tests hold both to it. The
/// generation check ([`JobRecord::generation`]) is added per request.
const DEAD_LETTERABLE: &str = "#cancel_requested = :false AND (\
    (#status = :queued AND (attribute_not_exists(#run_at) OR #run_at <= :now)) \
    OR (#status = :running AND #lease_expires_at < :now))";

/// The [`JobStore`] of a DynamoDB table laid out as in `template.yaml`.
pub struct DynamoJobStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention_seconds: i64,
    owner_quotas: bool,
}

impl DynamoJobStore {
    /// The store of `table`, reached through `client`, whose records live
    /// `retention_seconds` after they end.
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, retention_seconds: i64) -> Self {
        DynamoJobStore {
            client,
            table: table.to_owned(),
            retention_seconds,
            owner_quotas: false,
        }
    }

    /// The same store, releasing a job's quota slot whenever the job ends
    /// (`MAX_ACTIVE_JOBS_PER_OWNER` above 0).
    pub fn with_owner_quotas(mut self, on: bool) -> Self {
        self.owner_quotas = on;
        self
    }

    /// After a job ended: counted in the metrics, and its slot goes back to
    /// its owner, when quotas are on. A failure is logged and left; submit repairs the set when it is
    /// found full (it drops ids whose jobs have ended).
    async fn ended(&self, job: &JobRecord) {
        longrun_core::metrics::ended(job, job.status);
        if self.owner_quotas && job.status.is_terminal() {
            if let Err(err) = self.release_slot(&job.owner, &job.id).await {
                tracing::warn!(job_id = %job.id, error = %err, "could not release the job's quota slot; submit repairs it");
            }
        }
    }

    /// Job `id`'s record, read strongly (`consistent`) or eventually.
    async fn read(&self, id: &JobId, consistent: bool) -> Result<Option<JobRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(id.as_str()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        output.item.as_ref().map(item::from_item).transpose()
    }

    /// The owner's item (`owner#<owner>`: quota set, webhook secrets), read strongly.
    async fn owner_item(&self, owner: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", quota_key(owner))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(output.item)
    }

    /// Sends `update` to job `id`: the new item back on success, the old one
    /// when its condition fails.
    async fn send_update(&self, id: &JobId, update: Update) -> Result<Item, UpdateError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(id.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match update.apply(request).send().await {
            Ok(output) => output
                .attributes
                .ok_or_else(|| UpdateError::Store(StoreError::Corrupt("update returned no attributes".into()))),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => Err(UpdateError::Refused(e.item.clone())),
                _ => Err(UpdateError::Store(StoreError::Unavailable(describe(&err)))),
            },
        }
    }

    /// Sends a lease-fenced update: it applies only while the job runs under
    /// `lease_token`'s lease, and fails with [`StoreError::LeaseLost`] otherwise.
    async fn fenced_update(&self, id: &JobId, update: Update, lease_token: &str) -> Result<Item, StoreError> {
        match self.send_update(id, fenced(update, lease_token)).await {
            Ok(item) => Ok(item),
            Err(UpdateError::Refused(_)) => Err(StoreError::LeaseLost),
            Err(UpdateError::Store(err)) => Err(err),
        }
    }

    /// Sends a conditional state change: the new record, or the record that
    /// refused it (`ALL_OLD`), or nothing.
    async fn transition(&self, id: &JobId, update: Update) -> Result<Transition, StoreError> {
        match self.send_update(id, update).await {
            Ok(item) => Ok(Transition::Done(Box::new(item::from_item(&item)?))),
            Err(UpdateError::Refused(Some(old))) => Ok(Transition::Refused(Box::new(item::from_item(&old)?))),
            Err(UpdateError::Refused(None)) => Ok(Transition::NotFound),
            Err(UpdateError::Store(err)) => Err(err),
        }
    }
}

/// `update`, applied only while the job runs under `lease_token`'s lease.
fn fenced(update: Update, lease_token: &str) -> Update {
    update
        .condition("#status = :running AND #lease_owner = :owner")
        .value(":running", s(JobStatus::Running.as_str()))
        .value(":owner", s(lease_token))
}

/// How often a chain step's end is tried again after a transaction conflict.
const CONFLICT_RETRIES: u64 = 3;

/// Whether a transaction was cancelled by a conflict with another one (its
/// cancellation reasons name `TransactionConflict`), not by a condition.
fn transaction_conflicted(
    err: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> bool {
    match err.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                cancelled,
            ),
        ) => conflict_among(cancelled.cancellation_reasons()),
        _ => false,
    }
}

/// Whether any of a cancelled transaction's reasons is a conflict.
fn conflict_among(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> bool {
    reasons
        .iter()
        .any(|reason| reason.code() == Some("TransactionConflict"))
}

impl DynamoJobStore {
    /// Ends a chain step and creates the next one in one transaction: the
    /// step's end under its lease and only while no cancel was asked for,
    /// the next step only if no live record has its id. `Ok(None)` when a
    /// cancel request stands in the way (the caller ends the step without
    /// its next one); `LeaseLost` when the lease is gone.
    async fn finish_with_next(
        &self,
        id: &JobId,
        lease_token: &str,
        update: Update,
        next: &JobRecord,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let end = update
            .condition("#status = :running AND #lease_owner = :owner AND #cancel_requested = :false")
            .value(":running", s(JobStatus::Running.as_str()))
            .value(":owner", s(lease_token))
            .value(":false", AttributeValue::Bool(false))
            .into_transact(&self.table, s(id.as_str()))
            .map_err(StoreError::Corrupt)?;
        let create = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item::to_item(next)))
            .condition_expression("attribute_not_exists(pk) OR #expires_at < :now_s")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":now_s", n(now_ms / 1000))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .update(end)
                    .build(),
            )
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(create)
                    .build(),
            );
        if self.owner_quotas {
            // The chain keeps its quota slot: the next step takes one in the
            // same write (over the limit, if need be: it is no new
            // admission), before this step's own is released as it ends.
            let take_slot = owners::slot_taken(&next.id, now_ms)
                .into_transact(&self.table, quota_key(&next.owner))
                .map_err(StoreError::Corrupt)?;
            transaction = transaction.transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .update(take_slot)
                    .build(),
            );
        }
        // Another transaction on one of these items (two chains of one owner
        // ending at once, on its quota item) cancels this one without any
        // condition failing: it is tried again, and then is a store fault.
        let mut conflicts = 0;
        let result = loop {
            let result = transaction.clone().send().await;
            match &result {
                Err(err) if transaction_conflicted(err) => {
                    conflicts += 1;
                    if conflicts > CONFLICT_RETRIES {
                        return Err(StoreError::Unavailable(format!(
                            "the end of {id} conflicted with other transactions {conflicts} times"
                        )));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 * conflicts)).await;
                }
                _ => break result,
            }
        };
        match result {
            // A transaction answers no attributes: read what was written.
            Ok(_) => self.get(id).await?.map(Some).ok_or(StoreError::NotFound),
            Err(err) => {
                let refused = matches!(
                    err.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(_))
                );
                if !refused {
                    return Err(StoreError::Unavailable(describe(&err)));
                }
                match self.get(id).await? {
                    // An earlier try committed and its answer was lost: the
                    // step ended SUCCEEDED and its next step exists.
                    Some(job)
                        if job.status == JobStatus::Succeeded
                            && self.get(&next.id).await?.is_some_and(|n| {
                                n.chain.as_ref().and_then(|c| c.previous_job_id.as_ref()) == Some(id)
                            }) =>
                    {
                        Ok(Some(job))
                    }
                    Some(job) if job.is_leased_to(lease_token) && job.cancel_requested => Ok(None),
                    Some(job) if job.is_leased_to(lease_token) => Err(StoreError::Corrupt(format!(
                        "the next step of {id} exists while the step still runs"
                    ))),
                    _ => Err(StoreError::LeaseLost),
                }
            }
        }
    }

    /// Up to `limit` ids from one shard of the due index whose `due_at` is before `now_ms`.
    async fn overdue_in(&self, shard: &str, now_ms: i64, limit: usize) -> Result<Vec<JobId>, StoreError> {
        let mut ids = Vec::new();
        let mut start_key = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("#due_shard = :shard AND #due_at < :now")
                .expression_attribute_names("#due_shard", "due_shard")
                .expression_attribute_names("#due_at", "due_at")
                .expression_attribute_values(":shard", s(shard))
                .expression_attribute_values(":now", n(now_ms))
                .limit((limit - ids.len()).min(1000) as i32)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            for item in output.items() {
                if let Some(id) = item.get_s("pk")?.as_deref().and_then(JobId::parse) {
                    ids.push(id);
                }
            }
            start_key = output.last_evaluated_key;
            if start_key.is_none() || ids.len() >= limit {
                return Ok(ids);
            }
        }
    }
}

/// Why an update did not apply.
enum UpdateError {
    /// Its condition failed; the item as it was, if there is one.
    Refused(Option<Item>),
    /// The request itself failed, or its answer had no item.
    Store(StoreError),
}

/// The update that ends a job: terminal `status`, finished and updated
/// now, the record's TTL counted from now, a new version, and out of the due
/// index. Every way a job ends (finish, cancel, dead-letter) starts here and
/// adds what is particular to it.
fn end_of_job(status: JobStatus, now_ms: i64, retention_seconds: i64) -> Update {
    Update::new()
        .set("status", s(status.as_str()))
        .set("finished_at", n(now_ms))
        .set("updated_at", n(now_ms))
        .set("expires_at", n(JobRecord::expiry_after(now_ms, retention_seconds)))
        .increment("version", 1)
        .remove("due_at")
        .remove("due_shard")
}

/// A run handing its job back to the queue (retry or continuation): QUEUED
/// again, not before `run_at`, overdue after `due_at`.
fn back_to_queue(run_at: i64, due_at: i64, now_ms: i64) -> Update {
    Update::new()
        .set("status", s(JobStatus::Queued.as_str()))
        .set("run_at", n(run_at))
        .set("due_at", n(due_at))
        .set("updated_at", n(now_ms))
        .increment("version", 1)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::CancellationReason;

    use super::conflict_among;

    #[test]
    fn a_cancelled_transaction_is_a_conflict_only_when_a_reason_says_so() {
        let reason = |code: &str| CancellationReason::builder().code(code).build();
        let cases = [
            (
                "the end's condition failed",
                vec![reason("ConditionalCheckFailed"), reason("None")],
                false,
            ),
            (
                "the next step exists",
                vec![reason("None"), reason("ConditionalCheckFailed")],
                false,
            ),
            (
                "the quota item was in another transaction",
                vec![reason("None"), reason("None"), reason("TransactionConflict")],
                true,
            ),
            ("no reasons given", vec![], false),
        ];
        for (case, reasons, expected) in cases {
            assert_eq!(conflict_among(&reasons), expected, "{case}");
        }
    }
}
