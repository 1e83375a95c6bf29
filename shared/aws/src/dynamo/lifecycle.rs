//! The job records on DynamoDB: every write one conditional request (or a
//! transaction where a chain step is created with the end of the one before).

use super::expr::Update;
use super::item::{json, n, s, Attributes};
use super::*;
use crate::describe;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use longrun_core::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, JobLifecycle, JobPage, ProgressAck, StoreError, Transition,
};
use longrun_core::record::{Callback, Finish, JobError, JobId, JobRecord, JobStatus, Lease, ProgressUpdate};

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
        self.read(id, true).await
    }

    async fn get_eventually(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.read(id, false).await
    }

    async fn claim(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ClaimOutcome, StoreError> {
        // One request on the usual path (a queued job); a takeover, rare by
        // nature, costs a second one, so that it counts a takeover and not
        // an attempt.
        // A continuation's claim (rarer still) also takes a second one: it
        // continues the attempt its last run began.
        let claimed = |counter: Option<&str>| {
            let update = Update::new()
                .set("status", s(JobStatus::Running.as_str()))
                .set("lease_owner", s(&lease.token))
                .set("lease_expires_at", n(lease.expires_at));
            let update = match counter {
                Some(counter) => update.increment(counter, 1),
                None => update,
            };
            update
                .set("continuing", AttributeValue::Bool(false))
                .set("resends", n(0))
                .set_if_not_exists("started_at", n(now_ms))
                .set("due_at", n(lease.expires_at))
                .set("updated_at", n(now_ms))
                .increment("version", 1)
                .value(":now", n(now_ms))
                .value(":false", AttributeValue::Bool(false))
        };
        let queued = claimed(Some("attempts"))
            .condition(&format!(
                "{CLAIMABLE_QUEUED} AND (attribute_not_exists(#continuing) OR #continuing = :false)"
            ))
            .value(":queued", s(JobStatus::Queued.as_str()));
        let found = match self.transition(id, queued).await? {
            Transition::Done(job) => return Ok(ClaimOutcome::Claimed(job)),
            Transition::NotFound => return Ok(ClaimOutcome::NotFound),
            Transition::Refused(job) => job,
        };
        if found.status == JobStatus::Queued && found.continuing && found.claimable_at(now_ms) {
            let continued = claimed(None)
                .condition(&format!("{CLAIMABLE_QUEUED} AND #continuing = :true"))
                .value(":queued", s(JobStatus::Queued.as_str()))
                .value(":true", AttributeValue::Bool(true));
            return Ok(match self.transition(id, continued).await? {
                Transition::Done(job) => ClaimOutcome::Claimed(job),
                Transition::Refused(job) => ClaimOutcome::NotClaimable(job),
                Transition::NotFound => ClaimOutcome::NotFound,
            });
        }
        if !(found.status == JobStatus::Running && found.claimable_at(now_ms)) {
            return Ok(ClaimOutcome::NotClaimable(found));
        }
        let takeover = claimed(Some("takeovers"))
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
        lease_token: &str,
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
        let item = self.fenced_update(id, write, lease_token).await?;
        Ok(ProgressAck {
            cancel_requested: item.get_bool("cancel_requested")?.unwrap_or(false),
        })
    }

    async fn finish(
        &self,
        id: &JobId,
        lease_token: &str,
        finish: &Finish,
        now_ms: i64,
    ) -> Result<JobRecord, StoreError> {
        let ended = || end_of_job(finish.status(), now_ms, self.retention_seconds);
        let update = match finish {
            Finish::Retry { error, run_at, due_at } => {
                back_to_queue(*run_at, *due_at, now_ms).set("error", json(error)?)
            }
            // Not a new attempt: the next claim continues this one.
            Finish::Continuation {
                run_at,
                due_at,
                stalled_runs,
                queue,
            } => {
                let update = back_to_queue(*run_at, *due_at, now_ms)
                    .set("continuing", AttributeValue::Bool(true))
                    .set("stalled_runs", n(i64::from(*stalled_runs)));
                match queue {
                    Some(queue) => update.set("queue", s(queue)),
                    None => update,
                }
            }
            Finish::Succeeded { results, .. } => ended()
                .set("results", json(results)?)
                .set("progress", n(100))
                .remove("error")
                .remove("progress_message"),
            Finish::Failed { error } => ended().set("error", json(error)?),
            Finish::Cancelled => ended(),
        };
        let update = update
            .set("ended_by", s(lease_token))
            .remove("lease_owner")
            .remove("lease_expires_at");
        if let Finish::Succeeded { next: Some(next), .. } = finish {
            if let Some(job) = self
                .finish_with_next(id, lease_token, update.clone(), next, now_ms)
                .await?
            {
                self.ended(&job).await;
                return Ok(job);
            }
        }
        let job = match self.transition(id, super::fenced(update, lease_token)).await? {
            Transition::Done(job) => *job,
            // This run's own end, applied by an earlier send whose answer was
            // lost: what follows the write (metrics, the quota slot) is still
            // to do.
            Transition::Refused(job) if job.ended_by_run(lease_token, finish) => *job,
            Transition::Refused(_) | Transition::NotFound => return Err(StoreError::LeaseLost),
        };
        self.ended(&job).await;
        Ok(job)
    }

    async fn extend_lease(&self, id: &JobId, lease: &Lease, _now_ms: i64) -> Result<ProgressAck, StoreError> {
        let update = Update::new()
            .set("lease_expires_at", n(lease.expires_at))
            .set("due_at", n(lease.expires_at))
            .increment("version", 1);
        let item = self.fenced_update(id, update, &lease.token).await?;
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
                // This very cancel, applied by a send whose answer was lost.
                Transition::Refused(job) if job.ended_as_at(JobStatus::Cancelled, now_ms) => {
                    self.ended(&job).await;
                    return Ok(CancelOutcome::Cancelled(job));
                }
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
        generation: u32,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        // Records written before generations existed have no `redrives`: generation 0.
        let same_generation = if generation == 0 {
            "(attribute_not_exists(#redrives) OR #redrives = :redrives)"
        } else {
            "#redrives = :redrives"
        };
        let update = end_of_job(JobStatus::DeadLettered, now_ms, self.retention_seconds)
            .set("error", json(error)?)
            .remove("lease_owner")
            .remove("lease_expires_at")
            .condition(&format!("{same_generation} AND ({DEAD_LETTERABLE})"))
            .value(":redrives", n(i64::from(generation)))
            .value(":queued", s(JobStatus::Queued.as_str()))
            .value(":running", s(JobStatus::Running.as_str()))
            .value(":now", n(now_ms))
            .value(":false", AttributeValue::Bool(false));
        let outcome = match self.transition(id, update).await? {
            // This very dead letter, applied by a send whose answer was lost.
            Transition::Refused(job) if job.ended_as_at(JobStatus::DeadLettered, now_ms) => Transition::Done(job),
            outcome => outcome,
        };
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
            .set("continuing", AttributeValue::Bool(false))
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
        let outcome = self.transition(id, update).await?;
        if let (true, Transition::Done(job)) = (self.owner_quotas, &outcome) {
            // Active again: it takes a slot of its owner's quota (over the
            // limit, if need be: an operator's redrive is no new admission),
            // which its end gives back as any job's.
            if let Err(err) = self.reserve_slot(&job.owner, &job.id, u32::MAX).await {
                tracing::warn!(job_id = %job.id, error = %err, "the redriven job could not take a quota slot");
            }
        }
        Ok(outcome)
    }

    async fn list_by_owner(
        &self,
        owner: &str,
        status: Option<JobStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        self.list_owned(owner, status, limit, cursor).await
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
