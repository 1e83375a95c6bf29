//! [`JobStore`] on DynamoDB: one item per job, partition key `pk` = job id.
//! Every write is a single conditional request; a failed condition returns
//! the old item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) so callers
//! learn why without a second read. Non-terminal jobs carry `due_shard` and
//! `due_at`, the keys of the sparse index the reconciler scans; the index is
//! spread over [`DUE_SHARDS`] partition keys ([`due_shard`]) so that the
//! writes of claims, heartbeats and finishes do not all land on one
//! partition of the index.
//!
//! The item codec lives in [`item`], list cursors in [`cursor`], and every
//! update is written with the [`expr::Update`] builder.

mod cursor;
mod expr;
mod item;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use self::cursor::{decode_cursor, encode_cursor};
use self::expr::Update;
use self::item::{json, n, s, Attributes, Item};
use super::describe;
use longrun_core::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, JobLifecycle, JobPage, OwnerData, ProgressAck, QuotaSlots, SlotOutcome,
    StoreError, StreamTicket, Transition,
};
use longrun_core::record::{Callback, Finish, JobError, JobId, JobRecord, JobStatus, Lease, ProgressUpdate};
use longrun_core::webhook::WebhookSecrets;

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
/// The name of the owner index (`owner`, `created_at`) in `template.yaml`.
pub const OWNER_INDEX: &str = "by-owner";

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
/// generation check ([`JobRecord::redrives`]) is added per request.
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

/// The job ids in a quota item's `active` set (none without an item or set).
fn active_set(item: Option<&Item>) -> Vec<JobId> {
    item.and_then(|item| item.get("active"))
        .and_then(|active| active.as_ss().ok())
        .map(|ids| ids.iter().filter_map(|raw| JobId::parse(raw)).collect())
        .unwrap_or_default()
}

/// The key of an owner's quota item in the jobs table: `owner#<owner>`. It
/// holds `active`, the string set of the owner's active job ids; having no
/// `owner`, `created_at` or `due_shard`, it is in neither index, and no job
/// id (a UUID) can name it.
fn quota_key(owner: &str) -> AttributeValue {
    s(&format!("owner#{owner}"))
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
    /// `lease_owner`'s lease, and fails with [`StoreError::LeaseLost`] otherwise.
    async fn fenced_update(&self, id: &JobId, update: Update, lease_owner: &str) -> Result<Item, StoreError> {
        let update = update
            .condition("#status = :running AND #lease_owner = :owner")
            .value(":running", s(JobStatus::Running.as_str()))
            .value(":owner", s(lease_owner));
        match self.send_update(id, update).await {
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

impl DynamoJobStore {
    /// Ends a chain step and creates the next one in one transaction: the
    /// step's end under its lease and only while no cancel was asked for,
    /// the next step only if no live record has its id. `Ok(None)` when a
    /// cancel request stands in the way (the caller ends the step without
    /// its next one); `LeaseLost` when the lease is gone.
    async fn finish_with_next(
        &self,
        id: &JobId,
        lease_owner: &str,
        update: Update,
        next: &JobRecord,
        now_ms: i64,
    ) -> Result<Option<JobRecord>, StoreError> {
        let end = update
            .condition("#status = :running AND #lease_owner = :owner AND #cancel_requested = :false")
            .value(":running", s(JobStatus::Running.as_str()))
            .value(":owner", s(lease_owner))
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
            let take_slot = Update::new()
                .add_to_set("active", AttributeValue::Ss(vec![next.id.to_string()]))
                .into_transact(&self.table, quota_key(&next.owner))
                .map_err(StoreError::Corrupt)?;
            transaction = transaction.transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .update(take_slot)
                    .build(),
            );
        }
        let result = transaction.send().await;
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
                    Some(job) if job.is_leased_to(lease_owner) && job.cancel_requested => Ok(None),
                    Some(job) if job.is_leased_to(lease_owner) => Err(StoreError::Corrupt(format!(
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

#[async_trait]
impl JobLifecycle for DynamoJobStore {
    async fn create(&self, job: &JobRecord, now_ms: i64) -> Result<CreateOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::to_item(job)))
            .condition_expression("attribute_not_exists(pk) OR #expires_at < :now_s")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":now_s", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(CreateOutcome::Created),
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e)) => {
                    let old = e
                        .item()
                        .ok_or_else(|| StoreError::Corrupt("condition failed without the old item".into()))?;
                    Ok(CreateOutcome::Exists(Box::new(item::from_item(old)?)))
                }
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        output.item.as_ref().map(item::from_item).transpose()
    }

    async fn claim(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ClaimOutcome, StoreError> {
        // One request on the usual path (a queued job); a takeover, rare by
        // nature, costs a second one, so that it counts a takeover and not
        // an attempt.
        let claimed = |counter: &str| {
            Update::new()
                .set("status", s(JobStatus::Running.as_str()))
                .set("lease_owner", s(&lease.owner))
                .set("lease_expires_at", n(lease.expires_at))
                .increment(counter, 1)
                .set("resends", n(0))
                .set_if_not_exists("started_at", n(now_ms))
                .set("due_at", n(lease.expires_at))
                .set("updated_at", n(now_ms))
                .increment("version", 1)
                .value(":now", n(now_ms))
                .value(":false", AttributeValue::Bool(false))
        };
        let queued = claimed("attempts")
            .condition(CLAIMABLE_QUEUED)
            .value(":queued", s(JobStatus::Queued.as_str()));
        let found = match self.transition(id, queued).await? {
            Transition::Done(job) => return Ok(ClaimOutcome::Claimed(job)),
            Transition::NotFound => return Ok(ClaimOutcome::NotFound),
            Transition::Refused(job) => job,
        };
        if !(found.status == JobStatus::Running && found.claimable_at(now_ms)) {
            return Ok(ClaimOutcome::NotClaimable(found));
        }
        let takeover = claimed("takeovers")
            .condition(TAKEOVER)
            .value(":running", s(JobStatus::Running.as_str()));
        Ok(match self.transition(id, takeover).await? {
            Transition::Done(job) => {
                longrun_core::metrics::taken_over(&job);
                ClaimOutcome::Claimed(job)
            }
            Transition::Refused(job) => ClaimOutcome::NotClaimable(job),
            Transition::NotFound => ClaimOutcome::NotFound,
        })
    }

    async fn record_progress(
        &self,
        id: &JobId,
        lease_owner: &str,
        update: &ProgressUpdate,
        now_ms: i64,
    ) -> Result<ProgressAck, StoreError> {
        let mut write = Update::new()
            .set("progress", n(i64::from(update.progress)))
            .set("updated_at", n(now_ms))
            .increment("version", 1);
        write = match &update.message {
            Some(message) => write.set("progress_message", s(message)),
            None => write.remove("progress_message"),
        };
        if let Some(checkpoint) = &update.checkpoint {
            write = write.set("checkpoint", json(checkpoint)?);
        }
        let item = self.fenced_update(id, write, lease_owner).await?;
        Ok(ProgressAck {
            cancel_requested: item.get_bool("cancel_requested")?.unwrap_or(false),
        })
    }

    async fn finish(
        &self,
        id: &JobId,
        lease_owner: &str,
        finish: &Finish,
        now_ms: i64,
    ) -> Result<JobRecord, StoreError> {
        let ended = || end_of_job(finish.status(), now_ms, self.retention_seconds);
        let update = match finish {
            Finish::Retry { error, run_at, due_at } => {
                back_to_queue(*run_at, *due_at, now_ms).set("error", json(error)?)
            }
            // Not a new attempt: the claim counted one, this gives it back.
            Finish::Continuation {
                run_at,
                due_at,
                stalled_runs,
            } => back_to_queue(*run_at, *due_at, now_ms)
                .increment("attempts", -1)
                .set("stalled_runs", n(i64::from(*stalled_runs))),
            Finish::Succeeded { results, .. } => ended()
                .set("results", json(results)?)
                .set("progress", n(100))
                .remove("error")
                .remove("progress_message"),
            Finish::Failed { error } => ended().set("error", json(error)?),
            Finish::Cancelled => ended(),
        };
        let update = update.remove("lease_owner").remove("lease_expires_at");
        if let Finish::Succeeded { next: Some(next), .. } = finish {
            if let Some(job) = self
                .finish_with_next(id, lease_owner, update.clone(), next, now_ms)
                .await?
            {
                self.ended(&job).await;
                return Ok(job);
            }
        }
        let item = self.fenced_update(id, update, lease_owner).await?;
        let job = item::from_item(&item)?;
        self.ended(&job).await;
        Ok(job)
    }

    async fn extend_lease(&self, id: &JobId, lease: &Lease, _now_ms: i64) -> Result<ProgressAck, StoreError> {
        let update = Update::new()
            .set("lease_expires_at", n(lease.expires_at))
            .set("due_at", n(lease.expires_at))
            .increment("version", 1);
        let item = self.fenced_update(id, update, &lease.owner).await?;
        Ok(ProgressAck {
            cancel_requested: item.get_bool("cancel_requested")?.unwrap_or(false),
        })
    }

    async fn request_cancel(&self, id: &JobId, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        // A job can move between QUEUED and RUNNING while we ask; a few rounds settle it.
        for _ in 0..4 {
            let unheld = end_of_job(JobStatus::Cancelled, now_ms, self.retention_seconds)
                .set("cancel_requested", AttributeValue::Bool(true))
                .remove("lease_owner")
                .remove("lease_expires_at")
                .condition(UNHELD)
                .value(":queued", s(JobStatus::Queued.as_str()))
                .value(":running", s(JobStatus::Running.as_str()))
                .value(":now", n(now_ms));
            let found = match self.transition(id, unheld).await? {
                Transition::Done(job) => {
                    self.ended(&job).await;
                    return Ok(CancelOutcome::Cancelled(job));
                }
                Transition::NotFound => return Ok(CancelOutcome::NotFound),
                Transition::Refused(job) => job,
            };
            if found.status.is_terminal() {
                return Ok(CancelOutcome::AlreadyFinished(found));
            }
            let running = Update::new()
                .set("cancel_requested", AttributeValue::Bool(true))
                .set("updated_at", n(now_ms))
                .increment("version", 1)
                .condition("#status = :running")
                .value(":running", s(JobStatus::Running.as_str()));
            match self.transition(id, running).await? {
                Transition::Done(job) => return Ok(CancelOutcome::Requested(job)),
                Transition::NotFound => return Ok(CancelOutcome::NotFound),
                Transition::Refused(job) if job.status.is_terminal() => return Ok(CancelOutcome::AlreadyFinished(job)),
                Transition::Refused(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "the job kept changing state while being cancelled".into(),
        ))
    }

    async fn dead_letter(
        &self,
        id: &JobId,
        error: &JobError,
        redrives: u32,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        // Records written before generations existed have no `redrives`: generation 0.
        let generation = if redrives == 0 {
            "(attribute_not_exists(#redrives) OR #redrives = :redrives)"
        } else {
            "#redrives = :redrives"
        };
        let update = end_of_job(JobStatus::DeadLettered, now_ms, self.retention_seconds)
            .set("error", json(error)?)
            .remove("lease_owner")
            .remove("lease_expires_at")
            .condition(&format!("{generation} AND ({DEAD_LETTERABLE})"))
            .value(":redrives", n(i64::from(redrives)))
            .value(":queued", s(JobStatus::Queued.as_str()))
            .value(":running", s(JobStatus::Running.as_str()))
            .value(":now", n(now_ms))
            .value(":false", AttributeValue::Bool(false));
        let outcome = self.transition(id, update).await?;
        if let Transition::Done(job) = &outcome {
            self.ended(job).await;
        }
        Ok(outcome)
    }

    async fn requeue_dead_lettered(&self, id: &JobId, now_ms: i64, due_at: i64) -> Result<Transition, StoreError> {
        let update = Update::new()
            .set("status", s(JobStatus::Queued.as_str()))
            .set("due_at", n(due_at))
            .set("due_shard", s(&due_shard(id)))
            .set("updated_at", n(now_ms))
            .set("attempts", n(0))
            .set("takeovers", n(0))
            .set("resends", n(0))
            .set("stalled_runs", n(0))
            .increment("redrives", 1)
            .remove("started_at")
            .set("cancel_requested", AttributeValue::Bool(false))
            .set("expires_at", n(JobRecord::expiry_after(now_ms, self.retention_seconds)))
            .increment("version", 1)
            .remove("finished_at")
            .remove("run_at")
            .condition("#status = :dead")
            .value(":dead", s(JobStatus::DeadLettered.as_str()));
        self.transition(id, update).await
    }

    async fn list_by_owner(
        &self,
        owner: &str,
        status: Option<JobStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        let start_key = cursor.map(|c| decode_cursor(c, owner)).transpose()?;
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start_key);
        if let Some(status) = status {
            query = query
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        let output = query.send().await.map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(JobPage {
            jobs: output.items().iter().map(item::from_item).collect::<Result<_, _>>()?,
            next_cursor: output.last_evaluated_key.as_ref().map(encode_cursor),
        })
    }

    async fn overdue(&self, now_ms: i64, limit: usize) -> Result<Vec<JobId>, StoreError> {
        // An even share of `limit` from every shard, the most overdue of
        // each first, so one crowded shard cannot hide the others; what a
        // shard holds beyond its share waits for the next pass.
        // A shard that cannot be read is skipped (its jobs wait for the next
        // pass) rather than failing the pass for the other fifteen.
        let share = limit.div_ceil(DUE_SHARDS).max(1);
        let mut ids = Vec::new();
        let mut failed = Vec::new();
        for shard in due_shards() {
            match self.overdue_in(&shard, now_ms, share).await {
                Ok(found) => ids.extend(found),
                Err(err) => {
                    tracing::warn!(%shard, error = %err, "could not read a shard of the due index; skipped this pass");
                    failed.push(err);
                }
            }
        }
        if failed.len() == DUE_SHARDS {
            return Err(failed.remove(0));
        }
        ids.truncate(limit);
        Ok(ids)
    }

    async fn defer_due(&self, id: &JobId, expected: i64, new_due_at: i64, resent: bool) -> Result<bool, StoreError> {
        let mut update = Update::new().set("due_at", n(new_due_at)).increment("version", 1);
        if resent {
            update = update.increment("resends", 1);
        }
        let update = update.condition("#due_at = :expected").value(":expected", n(expected));
        Ok(matches!(self.transition(id, update).await?, Transition::Done(_)))
    }

    async fn update_callback(&self, id: &JobId, expected: &Callback, new: &Callback) -> Result<bool, StoreError> {
        // The stored JSON was written by the same codec, so equal states are equal strings.
        let update = Update::new()
            .set("callback", json(new)?)
            .increment("version", 1)
            .condition("#callback = :expected")
            .value(":expected", json(expected)?);
        Ok(matches!(self.transition(id, update).await?, Transition::Done(_)))
    }
}

#[async_trait]
impl QuotaSlots for DynamoJobStore {
    async fn reserve_slot(&self, owner: &str, id: &JobId, limit: u32) -> Result<SlotOutcome, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", quota_key(owner))
            .update_expression("ADD #active :ids")
            .condition_expression("attribute_not_exists(#active) OR size(#active) < :limit OR contains(#active, :id)")
            .expression_attribute_names("#active", "active")
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![id.to_string()]))
            .expression_attribute_values(":id", s(id.as_str()))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(SlotOutcome::Reserved {
                newly: !active_set(output.attributes.as_ref()).contains(id),
            }),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => Ok(SlotOutcome::Full {
                    active: active_set(e.item.as_ref()),
                }),
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }

    async fn release_slot(&self, owner: &str, id: &JobId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", quota_key(owner))
            .update_expression("DELETE #active :ids")
            .expression_attribute_names("#active", "active")
            .expression_attribute_values(":ids", AttributeValue::Ss(vec![id.to_string()]))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(())
    }

    async fn active_slots(&self, owner: &str) -> Result<Vec<JobId>, StoreError> {
        Ok(active_set(self.owner_item(owner).await?.as_ref()))
    }
}

#[async_trait]
impl OwnerData for DynamoJobStore {
    async fn webhook_secrets(&self, owner: &str) -> Result<Option<WebhookSecrets>, StoreError> {
        match self.owner_item(owner).await? {
            Some(item) => item.get_json("webhook_secrets"),
            None => Ok(None),
        }
    }

    async fn replace_webhook_secrets(
        &self,
        owner: &str,
        expected_created_at: Option<i64>,
        new: &WebhookSecrets,
    ) -> Result<bool, StoreError> {
        let update = Update::new()
            .set("webhook_secrets", json(new)?)
            .set("webhook_secrets_created_at", n(new.created_at));
        let update = match expected_created_at {
            None => update.condition("attribute_not_exists(#webhook_secrets_created_at)"),
            Some(at) => update
                .condition("#webhook_secrets_created_at = :expected")
                .value(":expected", n(at)),
        };
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", quota_key(owner));
        match update.apply(request).send().await {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }

    async fn put_stream_ticket(&self, ticket: &StreamTicket) -> Result<(), StoreError> {
        // Not `owner`, `created_at` or `due_shard`: in neither index.
        let mut item = Item::new();
        item.insert("pk".into(), ticket_key(&ticket.token_hash));
        item.insert("ticket_owner".into(), s(&ticket.owner));
        item.insert("ticket_job_id".into(), s(ticket.job_id.as_str()));
        item.insert("ticket_expires_at".into(), n(ticket.expires_at));
        item.insert("expires_at".into(), n(ticket.expires_at / 1000 + 60));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(())
    }

    async fn stream_ticket(&self, token_hash: &str, now_ms: i64) -> Result<Option<StreamTicket>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", ticket_key(token_hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let Some(item) = output.item else { return Ok(None) };
        let ticket = StreamTicket {
            token_hash: token_hash.to_owned(),
            owner: item.required_s("ticket_owner")?,
            job_id: JobId::parse(&item.required_s("ticket_job_id")?)
                .ok_or_else(|| StoreError::Corrupt("ticket_job_id".into()))?,
            expires_at: item.get_n("ticket_expires_at")?.unwrap_or(0),
        };
        Ok((ticket.expires_at >= now_ms).then_some(ticket))
    }
}

/// The key of a stream ticket's item: `ticket#<token hash>`.
fn ticket_key(token_hash: &str) -> AttributeValue {
    s(&format!("ticket#{token_hash}"))
}
