//! Limit keys: one `limit#<key>` item each, holding the key's
//! [`LimitState`] (as JSON) and a version. A change reads the item, computes
//! the new state and writes it back only if no other change came between
//! (the version), trying again a few times when one did: two workers can
//! never both take the last slot.

use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::item::{json, n, s, Attributes};
use super::DynamoJobStore;
use crate::describe;
use longrun_core::limits::LimitState;
use longrun_core::ports::{LimitChange, LimitSlots, StoreError, LIMIT_STATE_KEPT_MS};

/// Changes that lose to a concurrent change are tried this many times, each
/// after a short random pause that grows with the tries (so that many
/// workers at one key spread out instead of colliding again).
const CHANGE_TRIES: u32 = 16;

fn limit_key(key: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    s(&format!("limit#{key}"))
}

impl DynamoJobStore {
    /// The key's state and the item's version (`None`: no item).
    async fn read_limit(&self, key: &str) -> Result<(LimitState, Option<i64>), StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", limit_key(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        match &output.item {
            Some(item) => Ok((
                item.get_json::<LimitState>("limit_state")?.unwrap_or_default(),
                item.get_n::<i64>("version")?,
            )),
            None => Ok((LimitState::default(), None)),
        }
    }

    /// Writes `state` if the item is still at `read` (`None`: still absent);
    /// `false` when another change came first.
    async fn write_limit(&self, key: &str, state: &LimitState, read: Option<i64>) -> Result<bool, StoreError> {
        let lapses_ms = state.lapses_at(None) + LIMIT_STATE_KEPT_MS;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", limit_key(key))
            .item("limit_state", json(state)?)
            .item("version", n(read.unwrap_or(0) + 1))
            .item("expires_at", n(lapses_ms / 1000));
        let request = match read {
            Some(v) => request
                .condition_expression("version = :read")
                .expression_attribute_values(":read", n(v)),
            None => request.condition_expression("attribute_not_exists(pk)"),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(StoreError::Unavailable(describe(&err))),
            },
        }
    }
}

#[async_trait::async_trait]
impl LimitSlots for DynamoJobStore {
    async fn limit_state(&self, key: &str) -> Result<LimitState, StoreError> {
        Ok(self.read_limit(key).await?.0)
    }

    async fn change_limit(&self, key: &str, change: LimitChange<'_>) -> Result<LimitState, StoreError> {
        for tried in 0..CHANGE_TRIES {
            if tried > 0 {
                let pause = rand::random_range(0..=10 * u64::from(tried));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            let (stored, version) = self.read_limit(key).await?;
            let changed = change(&stored);
            if changed == stored || self.write_limit(key, &changed, version).await? {
                return Ok(stored);
            }
        }
        Err(StoreError::Unavailable(format!(
            "limit {key:?} changed under {CHANGE_TRIES} changes in a row"
        )))
    }
}
