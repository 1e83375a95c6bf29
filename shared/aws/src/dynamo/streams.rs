//! An owner's open event streams: one `streams#<owner>` item holding them
//! (as JSON) and a version. Opening reads the item, decides
//! ([`longrun_core::streams::admit`]) and writes it back only if no other
//! open or close changed it since (the version), trying again a few times
//! when one did; closing removes one stream and moves the version on, so
//! an open that read before it tries again instead of bringing it back.

use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::item::{json, n, s, Attributes};
use super::DynamoJobStore;
use crate::describe;
use longrun_core::ports::StoreError;
use longrun_core::streams::{self, OpenStream, OpenStreams, StreamAdmission, StreamLimits};

/// Opens that lose to a concurrent open or close are tried this many times.
const OPEN_TRIES: u32 = 5;

fn streams_key(owner: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    s(&format!("streams#{owner}"))
}

impl DynamoJobStore {
    /// [`longrun_core::ports::OwnerData::open_stream`] on the owner's streams item.
    pub(super) async fn open_stream_item(
        &self,
        owner: &str,
        id: &str,
        stream: &OpenStream,
        now_ms: i64,
        limits: StreamLimits,
    ) -> Result<StreamAdmission, StoreError> {
        for _ in 0..OPEN_TRIES {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", streams_key(owner))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            let (current, version) = match &output.item {
                Some(item) => (
                    item.get_json::<OpenStreams>("open_streams")?.unwrap_or_default(),
                    item.get_n::<i64>("version")?,
                ),
                None => (OpenStreams::new(), None),
            };
            let admission = streams::admit(&current, id, stream, now_ms, limits);
            let StreamAdmission::Admitted(open) = &admission else {
                return Ok(admission);
            };
            let last_end = open.values().map(|s| s.expires_at).max().unwrap_or(now_ms);
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", streams_key(owner))
                .item("open_streams", json(open)?)
                .item("version", n(version.unwrap_or(0) + 1))
                // Gone by the table's TTL once its last stream's time is over.
                .item("expires_at", n(last_end / 1000 + 60));
            let request = match version {
                Some(v) => request
                    .condition_expression("version = :read")
                    .expression_attribute_values(":read", n(v)),
                None => request.condition_expression("attribute_not_exists(pk)"),
            };
            match request.send().await {
                Ok(_) => return Ok(admission),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(_)) => continue,
                    _ => return Err(StoreError::Unavailable(describe(&err))),
                },
            }
        }
        Err(StoreError::Unavailable(format!(
            "the open streams of an owner changed under {OPEN_TRIES} opens in a row"
        )))
    }

    /// [`longrun_core::ports::OwnerData::close_stream`]: reads the item and
    /// writes it back without the stream, under the same version check.
    pub(super) async fn close_stream_item(&self, owner: &str, id: &str) -> Result<(), StoreError> {
        for _ in 0..OPEN_TRIES {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", streams_key(owner))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            let Some(item) = output.item else { return Ok(()) };
            let mut open = item.get_json::<OpenStreams>("open_streams")?.unwrap_or_default();
            let version = item.get_n::<i64>("version")?.unwrap_or(0);
            let Some(closed) = open.remove(id) else { return Ok(()) };
            let last_end = open.values().map(|s| s.expires_at).max().unwrap_or(closed.expires_at);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", streams_key(owner))
                .item("open_streams", json(&open)?)
                .item("version", n(version + 1))
                .item("expires_at", n(last_end / 1000 + 60))
                .condition_expression("version = :read")
                .expression_attribute_values(":read", n(version))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(_)) => continue,
                    _ => return Err(StoreError::Unavailable(describe(&err))),
                },
            }
        }
        Err(StoreError::Unavailable(format!(
            "the open streams of an owner changed under {OPEN_TRIES} closes in a row"
        )))
    }
}
