//! The owner items beside the job records: quota slots (the active set),
//! webhook signing secrets and stream tickets (open streams: [`super::streams`]).

use super::expr::Update;
use super::item::{json, n, s, Attributes, Item};
use super::*;
use crate::describe;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use longrun_core::ports::{OwnerData, QuotaSlots, RateWindow, SlotOutcome, StoreError, StreamTicket};
use longrun_core::record::JobId;
use longrun_core::streams::{OpenStream, StreamAdmission, StreamLimits};
use longrun_core::time::now_ms;
use longrun_core::webhook::WebhookSecrets;
use std::collections::BTreeMap;

/// The job ids in a quota item's `active` set (none without an item or set).
pub(super) fn active_set(item: Option<&Item>) -> Vec<JobId> {
    item.and_then(|item| item.get("active"))
        .and_then(|active| active.as_ss().ok())
        .map(|ids| ids.iter().filter_map(|raw| JobId::parse(raw)).collect())
        .unwrap_or_default()
}

/// The attribute of a quota item that keeps when job `id`, a derived id
/// (which carries no time), was reserved: `reserved_<id as 32 hex digits>`
/// (a name its placeholder can spell).
pub(super) fn reserved_at_attribute(id: &JobId) -> String {
    format!("reserved_{}", id.as_str().replace('-', ""))
}

/// When each job of a quota item's set was reserved, where the item says.
pub(super) fn reserved_times(item: Option<&Item>) -> BTreeMap<JobId, i64> {
    let Some(item) = item else {
        return BTreeMap::new();
    };
    item.iter()
        .filter_map(|(name, value)| {
            let hex = name.strip_prefix("reserved_")?;
            let id = JobId::parse(&uuid::Uuid::try_parse(hex).ok()?.to_string())?;
            Some((id, value.as_n().ok()?.parse().ok()?))
        })
        .collect()
}

/// The update that puts job `id` in its owner's active set at `now_ms`
/// (reserving a slot, or handing a chain's on to its next step): a random
/// id carries its time; a derived one gets it kept beside it, so the item,
/// and each write of it, stays small for random ids.
pub(super) fn slot_taken(id: &JobId, now_ms: i64) -> Update {
    let update = Update::new().add_to_set("active", AttributeValue::Ss(vec![id.to_string()]));
    match id.created_ms() {
        Some(_) => update,
        None => update.set_if_not_exists(&reserved_at_attribute(id), n(now_ms)),
    }
}

/// The key of an owner's quota item in the jobs table: `owner#<owner>`. It
/// holds `active`, the string set of the owner's active job ids, and for
/// each derived one `reserved_<id>`, when it was reserved; having no
/// `owner`, `created_at` or `due_shard`, it is in neither index, and no job
/// id (a UUID) can name it.
pub(super) fn quota_key(owner: &str) -> AttributeValue {
    s(&format!("owner#{owner}"))
}

#[async_trait]
impl QuotaSlots for DynamoJobStore {
    async fn reserve_slot(&self, owner: &str, id: &JobId, limit: u32) -> Result<SlotOutcome, StoreError> {
        // Only a new id is added, so a success needs no answer: the set
        // (which grows with the owner's active jobs) is read back only when
        // the condition fails, to tell a replay (the id is in it) from a
        // full set.
        let update = slot_taken(id, now_ms())
            .condition("(attribute_not_exists(#active) OR size(#active) < :limit) AND NOT contains(#active, :id)")
            .value(":id", s(id.as_str()))
            .value(":limit", n(i64::from(limit)));
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", quota_key(owner))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let result = update.apply(request).send().await;
        match result {
            Ok(_) => Ok(SlotOutcome::Reserved { newly: true }),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let active = active_set(e.item.as_ref());
                    if active.contains(id) {
                        return Ok(SlotOutcome::Reserved { newly: false });
                    }
                    Ok(SlotOutcome::Full {
                        active,
                        reserved_at: reserved_times(e.item.as_ref()),
                    })
                }
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }

    async fn release_slot(&self, owner: &str, id: &JobId) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", quota_key(owner))
            .update_expression("DELETE #active :ids REMOVE #reserved_at")
            .expression_attribute_names("#active", "active")
            .expression_attribute_names("#reserved_at", reserved_at_attribute(id))
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

    async fn count_in_window(&self, owner: &str, counter: &str, window: &RateWindow) -> Result<bool, StoreError> {
        // `rate#<owner>#<counter>#<window start>`: in no index (no owner,
        // created_at or due_shard), expired by the table's TTL a window
        // after its own.
        let update = Update::new()
            .increment("count", 1)
            .set("expires_at", n((window.start_ms + 2 * window.length_ms) / 1000 + 1))
            .condition("attribute_not_exists(#count) OR #count < :limit")
            .value(":limit", n(i64::from(window.limit)));
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("rate#{owner}#{counter}#{}", window.start_ms)));
        let result = update.apply(request).send().await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
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

    async fn open_stream(
        &self,
        owner: &str,
        id: &str,
        stream: &OpenStream,
        now_ms: i64,
        limits: StreamLimits,
    ) -> Result<StreamAdmission, StoreError> {
        self.open_stream_item(owner, id, stream, now_ms, limits).await
    }

    async fn close_stream(&self, owner: &str, id: &str) -> Result<(), StoreError> {
        self.close_stream_item(owner, id).await
    }
}

/// The key of a stream ticket's item: `ticket#<token hash>`.
fn ticket_key(token_hash: &str) -> AttributeValue {
    s(&format!("ticket#{token_hash}"))
}
