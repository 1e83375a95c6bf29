//! [`JobStore`] on DynamoDB: one item per job, partition key `pk` = job id.
//! Every write is a single conditional request; a failed condition returns
//! the old item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) so callers
//! learn why without a second read. Non-terminal jobs carry `due_shard` and
//! `due_at`, the keys of the sparse index the reconciler scans.

mod cursor;
mod item;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use self::cursor::{decode_cursor, encode_cursor};
use self::item::{json, n, s, Attributes, Item};
use super::describe;
use crate::job::{Finish, JobError, JobId, JobRecord, JobStatus, Lease, ProgressUpdate};
use crate::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, JobPage, JobStore, ProgressAck, StoreError, Transition,
};

/// The partition key of the sparse due index; every non-terminal job has it.
pub const DUE_SHARD: &str = "due";
/// The name of the sparse due index (`due_shard`, `due_at`) in `template.yaml`.
pub const DUE_INDEX: &str = "due";
/// The name of the owner index (`owner`, `created_at`) in `template.yaml`.
pub const OWNER_INDEX: &str = "by-owner";

pub struct DynamoJobStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoJobStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        DynamoJobStore {
            client,
            table: table.to_owned(),
        }
    }

    fn update(&self, id: &JobId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(id.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    /// Sends a lease-fenced update: `status = RUNNING AND lease_owner = :owner`.
    async fn fenced_update(&self, builder: UpdateItemFluentBuilder, lease_owner: &str) -> Result<Item, StoreError> {
        let result = builder
            .condition_expression("#status = :running AND #lease_owner = :owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lease_owner", "lease_owner")
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
            .expression_attribute_values(":owner", s(lease_owner))
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .ok_or_else(|| StoreError::Corrupt("update returned no attributes".into())),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::LeaseLost)
            }
            Err(err) => Err(StoreError::Unavailable(describe(&err))),
        }
    }

    /// Sends a conditional state change: the new record, or the record that
    /// refused it (`ALL_OLD`), or nothing.
    async fn transition(&self, builder: UpdateItemFluentBuilder) -> Result<Transition, StoreError> {
        match builder.send().await {
            Ok(output) => {
                let item = output
                    .attributes
                    .ok_or_else(|| StoreError::Corrupt("update returned no attributes".into()))?;
                Ok(Transition::Done(Box::new(JobRecord::try_from(&item)?)))
            }
            Err(err) => match err.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e)) => {
                    match e.item() {
                        Some(old) => Ok(Transition::Refused(Box::new(JobRecord::try_from(old)?))),
                        None => Ok(Transition::NotFound),
                    }
                }
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }

    /// The end of a job outside a run: terminal status, timestamps, TTL, out of the due index.
    fn terminal_update(
        &self,
        id: &JobId,
        status: JobStatus,
        now_ms: i64,
        retention_seconds: i64,
    ) -> UpdateItemFluentBuilder {
        self.update(id)
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#finished_at", "finished_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#due_at", "due_at")
            .expression_attribute_names("#due_shard", "due_shard")
            .expression_attribute_values(":new_status", s(status.as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires_at", n(JobRecord::expiry_after(now_ms, retention_seconds)))
    }
}

const TERMINAL_SET: &str = "#status = :new_status, #finished_at = :now, #updated_at = :now, \
                            #expires_at = :expires_at, #version = #version + :one";

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &JobRecord, now_ms: i64) -> Result<CreateOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Item::from(job)))
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
                    Ok(CreateOutcome::Exists(Box::new(JobRecord::try_from(old)?)))
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
        output.item.as_ref().map(JobRecord::try_from).transpose()
    }

    async fn claim(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ClaimOutcome, StoreError> {
        let builder = self
            .update(id)
            .update_expression(
                "SET #status = :running, #lease_owner = :owner, #lease_expires_at = :lease_exp, \
                 #attempts = #attempts + :one, #started_at = if_not_exists(#started_at, :now), \
                 #due_at = :lease_exp, #updated_at = :now, #version = #version + :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND ((#status = :queued AND (attribute_not_exists(#run_at) OR #run_at <= :now) \
                 AND #cancel_requested = :false) OR (#status = :running AND #lease_expires_at < :now))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#lease_owner", "lease_owner")
            .expression_attribute_names("#lease_expires_at", "lease_expires_at")
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_names("#started_at", "started_at")
            .expression_attribute_names("#due_at", "due_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#run_at", "run_at")
            .expression_attribute_names("#cancel_requested", "cancel_requested")
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()))
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":lease_exp", n(lease.expires_at))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        Ok(match self.transition(builder).await? {
            Transition::Done(job) => ClaimOutcome::Claimed(job),
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
        let mut set = vec![
            "#progress = :progress",
            "#updated_at = :now",
            "#version = #version + :one",
        ];
        let mut builder = self
            .update(id)
            .expression_attribute_names("#progress", "progress")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#progress_message", "progress_message")
            .expression_attribute_values(":progress", n(i64::from(update.progress)))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1));
        let mut remove = "";
        match &update.message {
            Some(message) => {
                set.push("#progress_message = :message");
                builder = builder.expression_attribute_values(":message", s(message));
            }
            None => remove = " REMOVE #progress_message",
        }
        if let Some(checkpoint) = &update.checkpoint {
            set.push("#checkpoint = :checkpoint");
            builder = builder
                .expression_attribute_names("#checkpoint", "checkpoint")
                .expression_attribute_values(":checkpoint", json(checkpoint)?);
        }
        let expression = format!("SET {}{remove}", set.join(", "));
        let item = self
            .fenced_update(builder.update_expression(expression), lease_owner)
            .await?;
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
        retention_seconds: i64,
    ) -> Result<JobRecord, StoreError> {
        let mut builder = self
            .update(id)
            .expression_attribute_names("#lease_expires_at", "lease_expires_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#due_at", "due_at")
            .expression_attribute_values(":status", s(finish.status().as_str()))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1));
        let common = "#status = :status, #updated_at = :now, #version = #version + :one";
        let expression = match finish {
            Finish::Retry { error, run_at, due_at } => {
                builder = builder
                    .expression_attribute_names("#error", "error")
                    .expression_attribute_names("#run_at", "run_at")
                    .expression_attribute_values(":error", json(error)?)
                    .expression_attribute_values(":run_at", n(*run_at))
                    .expression_attribute_values(":due_at", n(*due_at));
                format!(
                    "SET {common}, #error = :error, #run_at = :run_at, #due_at = :due_at \
                     REMOVE #lease_owner, #lease_expires_at"
                )
            }
            Finish::Continue { run_at, due_at } => {
                builder = builder
                    .expression_attribute_names("#run_at", "run_at")
                    .expression_attribute_names("#attempts", "attempts")
                    .expression_attribute_values(":run_at", n(*run_at))
                    .expression_attribute_values(":due_at", n(*due_at));
                format!(
                    "SET {common}, #run_at = :run_at, #due_at = :due_at, #attempts = #attempts - :one \
                     REMOVE #lease_owner, #lease_expires_at"
                )
            }
            terminal => {
                builder = builder
                    .expression_attribute_names("#finished_at", "finished_at")
                    .expression_attribute_names("#expires_at", "expires_at")
                    .expression_attribute_names("#due_shard", "due_shard")
                    .expression_attribute_values(":expires_at", n(JobRecord::expiry_after(now_ms, retention_seconds)));
                let ending = "#finished_at = :now, #expires_at = :expires_at";
                let cleared = "#lease_owner, #lease_expires_at, #due_at, #due_shard";
                match terminal {
                    Finish::Succeeded { results } => {
                        builder = builder
                            .expression_attribute_names("#results", "results")
                            .expression_attribute_names("#progress", "progress")
                            .expression_attribute_names("#error", "error")
                            .expression_attribute_names("#progress_message", "progress_message")
                            .expression_attribute_values(":results", json(results)?)
                            .expression_attribute_values(":hundred", n(100));
                        format!(
                            "SET {common}, {ending}, #results = :results, #progress = :hundred \
                             REMOVE {cleared}, #error, #progress_message"
                        )
                    }
                    Finish::Failed { error } => {
                        builder = builder
                            .expression_attribute_names("#error", "error")
                            .expression_attribute_values(":error", json(error)?);
                        format!("SET {common}, {ending}, #error = :error REMOVE {cleared}")
                    }
                    _ => format!("SET {common}, {ending} REMOVE {cleared}"),
                }
            }
        };
        let item = self
            .fenced_update(builder.update_expression(expression), lease_owner)
            .await?;
        JobRecord::try_from(&item)
    }
    async fn extend_lease(&self, id: &JobId, lease: &Lease, _now_ms: i64) -> Result<ProgressAck, StoreError> {
        let builder = self
            .update(id)
            .update_expression("SET #lease_expires_at = :exp, #due_at = :exp, #version = #version + :one")
            .expression_attribute_names("#lease_expires_at", "lease_expires_at")
            .expression_attribute_names("#due_at", "due_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":exp", n(lease.expires_at))
            .expression_attribute_values(":one", n(1));
        let item = self.fenced_update(builder, &lease.owner).await?;
        Ok(ProgressAck {
            cancel_requested: item.get_bool("cancel_requested")?.unwrap_or(false),
        })
    }

    async fn request_cancel(
        &self,
        id: &JobId,
        now_ms: i64,
        retention_seconds: i64,
    ) -> Result<CancelOutcome, StoreError> {
        // A job can move between QUEUED and RUNNING while we ask; a few rounds settle it.
        for _ in 0..4 {
            let queued = self
                .terminal_update(id, JobStatus::Cancelled, now_ms, retention_seconds)
                .update_expression(format!(
                    "SET {TERMINAL_SET}, #cancel_requested = :true REMOVE #due_at, #due_shard"
                ))
                .condition_expression("#status = :queued")
                .expression_attribute_names("#cancel_requested", "cancel_requested")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()));
            let found = match self.transition(queued).await? {
                Transition::Done(job) => return Ok(CancelOutcome::Cancelled(job)),
                Transition::NotFound => return Ok(CancelOutcome::NotFound),
                Transition::Refused(job) => job,
            };
            if found.status.is_terminal() {
                return Ok(CancelOutcome::AlreadyFinished(found));
            }
            let running = self
                .update(id)
                .update_expression("SET #cancel_requested = :true, #updated_at = :now, #version = #version + :one")
                .condition_expression("#status = :running")
                .expression_attribute_names("#cancel_requested", "cancel_requested")
                .expression_attribute_names("#updated_at", "updated_at")
                .expression_attribute_names("#version", "version")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":running", s(JobStatus::Running.as_str()));
            match self.transition(running).await? {
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
        now_ms: i64,
        retention_seconds: i64,
    ) -> Result<Transition, StoreError> {
        let builder = self
            .terminal_update(id, JobStatus::DeadLettered, now_ms, retention_seconds)
            .update_expression(format!(
                "SET {TERMINAL_SET}, #error = :error REMOVE #due_at, #due_shard, #lease_owner, #lease_expires_at"
            ))
            .condition_expression(
                "(#status = :queued AND (attribute_not_exists(#run_at) OR #run_at <= :now)) \
                 OR (#status = :running AND #lease_expires_at < :now)",
            )
            .expression_attribute_names("#run_at", "run_at")
            .expression_attribute_names("#error", "error")
            .expression_attribute_names("#lease_owner", "lease_owner")
            .expression_attribute_names("#lease_expires_at", "lease_expires_at")
            .expression_attribute_values(":error", json(error)?)
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(JobStatus::Running.as_str()));
        self.transition(builder).await
    }

    async fn requeue_dead_lettered(
        &self,
        id: &JobId,
        now_ms: i64,
        due_at: i64,
        retention_seconds: i64,
    ) -> Result<Transition, StoreError> {
        let builder = self
            .update(id)
            .update_expression(
                "SET #status = :queued, #due_at = :due_at, #due_shard = :shard, #updated_at = :now, \
                 #attempts = :zero, #cancel_requested = :false, #expires_at = :expires_at, \
                 #version = #version + :one REMOVE #finished_at, #run_at",
            )
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_names("#cancel_requested", "cancel_requested")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":expires_at", n(JobRecord::expiry_after(now_ms, retention_seconds)))
            .condition_expression("#status = :dead")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#due_at", "due_at")
            .expression_attribute_names("#due_shard", "due_shard")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#finished_at", "finished_at")
            .expression_attribute_names("#run_at", "run_at")
            .expression_attribute_values(":queued", s(JobStatus::Queued.as_str()))
            .expression_attribute_values(":dead", s(JobStatus::DeadLettered.as_str()))
            .expression_attribute_values(":due_at", n(due_at))
            .expression_attribute_values(":shard", s(DUE_SHARD))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1));
        self.transition(builder).await
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
            jobs: output
                .items()
                .iter()
                .map(JobRecord::try_from)
                .collect::<Result<_, _>>()?,
            next_cursor: output.last_evaluated_key.as_ref().map(encode_cursor),
        })
    }

    async fn overdue(&self, now_ms: i64, limit: usize) -> Result<Vec<JobId>, StoreError> {
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
                .expression_attribute_values(":shard", s(DUE_SHARD))
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

    async fn defer_due(&self, id: &JobId, expected: i64, new_due_at: i64) -> Result<bool, StoreError> {
        let builder = self
            .update(id)
            .update_expression("SET #due_at = :new, #version = #version + :one")
            .condition_expression("#due_at = :expected")
            .expression_attribute_names("#due_at", "due_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":new", n(new_due_at))
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":one", n(1));
        Ok(matches!(self.transition(builder).await?, Transition::Done(_)))
    }
}
