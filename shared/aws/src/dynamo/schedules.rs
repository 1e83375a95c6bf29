//! Schedules in the jobs table: one `schedule#<id>` item each, holding the
//! [`Schedule`] as JSON under a version, on the owner index (partition
//! `<owner>#schedules`, so never among the owner's jobs) and, while it has
//! a next tick, on the due index (partition `schedules`, never one of the
//! job shards). An owner's count is a `schedule-count#<owner>` item that
//! changes in the same transaction as the create or delete, so the cap holds
//! under concurrent creates.

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::item::{json, n, s, Attributes, Item};
use super::{DynamoJobStore, DUE_INDEX, OWNER_INDEX};
use crate::describe;
use longrun_core::list_cursor;
use longrun_core::ports::{ScheduleCreate, SchedulePage, ScheduleStore, StoreError};
use longrun_core::schedule::{Schedule, TICK_LOOKAHEAD_MS};

/// The due index partition schedules wait in.
pub(super) const SCHEDULE_DUE_SHARD: &str = "schedules";

fn schedule_key(id: &str) -> AttributeValue {
    s(&format!("schedule#{id}"))
}

fn count_key(owner: &str) -> AttributeValue {
    s(&format!("schedule-count#{owner}"))
}

fn owner_partition(owner: &str) -> String {
    format!("{owner}#schedules")
}

fn to_item(schedule: &Schedule, version: u64) -> Result<Item, StoreError> {
    let mut stored = schedule.clone();
    stored.version = version;
    let mut item = Item::new();
    item.insert("pk".into(), schedule_key(&schedule.id));
    item.insert("schedule".into(), json(&stored)?);
    item.insert("version".into(), n(version as i64));
    item.insert("owner_shard".into(), s(&owner_partition(&schedule.owner)));
    item.insert("created_at".into(), n(schedule.created_at));
    if let Some(due_at) = schedule.due_at(TICK_LOOKAHEAD_MS) {
        item.insert("due_shard".into(), s(SCHEDULE_DUE_SHARD));
        item.insert("due_at".into(), n(due_at));
    }
    Ok(item)
}

fn from_item(item: &Item) -> Result<Schedule, StoreError> {
    let mut schedule: Schedule = item
        .get_json("schedule")?
        .ok_or_else(|| StoreError::Corrupt("a schedule item without its schedule".into()))?;
    schedule.version = item.get_n("version")?.unwrap_or(schedule.version);
    Ok(schedule)
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl DynamoJobStore {
    /// The owner's count changed by `delta` in a transaction, bounded by
    /// `cap` when it grows.
    fn count_change(&self, owner: &str, delta: i64, cap: Option<u32>) -> Result<TransactWriteItem, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", count_key(owner))
            .update_expression("SET #count = if_not_exists(#count, :zero) + :delta")
            .expression_attribute_names("#count", "schedules")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":delta", n(delta));
        if let Some(cap) = cap {
            update = update
                .condition_expression("attribute_not_exists(#count) OR #count < :cap")
                .expression_attribute_values(":cap", n(i64::from(cap)));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(build_error)?)
            .build())
    }

    /// Runs one transaction: `None` when it applied, the per-item
    /// cancellation reasons when a condition refused it. A transaction that
    /// lost to a concurrent one (`TransactionConflict`: nothing applied) is
    /// tried again, up to [`TRANSACTION_TRIES`] times in all.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<Vec<Option<String>>>, StoreError> {
        for attempt in 1..=TRANSACTION_TRIES {
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(None),
                Err(err) => match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                        let reasons: Vec<Option<String>> = cancelled
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                            .collect();
                        let conflict = reasons.iter().flatten().any(|r| r == "TransactionConflict");
                        if conflict && attempt < TRANSACTION_TRIES {
                            tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
                            continue;
                        }
                        return Ok(Some(reasons));
                    }
                    _ => return Err(StoreError::Unavailable(describe(&err))),
                },
            }
        }
        unreachable!("the last try returns")
    }
}

/// Tries of a schedule transaction that lost to a concurrent one.
const TRANSACTION_TRIES: u32 = 3;

#[async_trait::async_trait]
impl ScheduleStore for DynamoJobStore {
    async fn create_schedule(&self, schedule: &Schedule, cap: u32) -> Result<ScheduleCreate, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(schedule, 1)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.count_change(&schedule.owner, 1, Some(cap))?,
        ];
        match self.transact(items).await? {
            None => Ok(ScheduleCreate::Created),
            Some(reasons) if reasons.get(1).and_then(Option::as_deref) == Some("ConditionalCheckFailed") => {
                Ok(ScheduleCreate::CapReached)
            }
            Some(reasons) => Err(StoreError::Unavailable(format!(
                "schedule create cancelled: {reasons:?}"
            ))),
        }
    }

    async fn get_schedule(&self, id: &str) -> Result<Option<Schedule>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", schedule_key(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        output.item.as_ref().map(from_item).transpose()
    }

    async fn replace_schedule(&self, schedule: &Schedule, expected_version: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(schedule, expected_version + 1)?))
            .condition_expression("version = :read AND owner_shard = :owner")
            .expression_attribute_values(":read", n(expected_version as i64))
            .expression_attribute_values(":owner", s(&owner_partition(&schedule.owner)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }

    async fn delete_schedule(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", schedule_key(id))
            .condition_expression("owner_shard = :owner")
            .expression_attribute_values(":owner", s(&owner_partition(owner)))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.count_change(owner, -1, None)?,
        ];
        match self.transact(items).await? {
            None => Ok(true),
            Some(reasons) if reasons.first().and_then(Option::as_deref) == Some("ConditionalCheckFailed") => Ok(false),
            Some(reasons) => Err(StoreError::Unavailable(format!(
                "schedule delete cancelled: {reasons:?}"
            ))),
        }
    }

    async fn list_schedules(
        &self,
        owner: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<SchedulePage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let partition = owner_partition(owner);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OWNER_INDEX)
            .key_condition_expression("owner_shard = :p")
            .expression_attribute_values(":p", s(&partition))
            .scan_index_forward(true)
            .limit(limit as i32 + 1);
        if let Some(cursor) = cursor {
            let (created_at, id) = list_cursor::decode_schedule(cursor, owner)?;
            query = query
                .exclusive_start_key("pk", schedule_key(&id))
                .exclusive_start_key("owner_shard", s(&partition))
                .exclusive_start_key("created_at", n(created_at));
        }
        let output = query.send().await.map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let mut schedules = output.items().iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        let more = schedules.len() > limit;
        schedules.truncate(limit);
        let next_cursor = more
            .then(|| {
                schedules
                    .last()
                    .map(|s| list_cursor::encode(s.created_at, &s.id, owner))
            })
            .flatten();
        Ok(SchedulePage { schedules, next_cursor })
    }

    async fn due_schedules(&self, now_ms: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("due_shard = :shard AND due_at <= :now")
            .expression_attribute_values(":shard", s(SCHEDULE_DUE_SHARD))
            .expression_attribute_values(":now", n(now_ms))
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(output
            .items()
            .iter()
            .filter_map(|item| item.get_s("pk").ok().flatten())
            .filter_map(|pk| pk.strip_prefix("schedule#").map(str::to_owned))
            .collect())
    }
}
