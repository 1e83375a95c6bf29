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
    /// The owner's open streams and the item's version (`None`: no item).
    async fn read_streams(&self, owner: &str) -> Result<(OpenStreams, Option<i64>), StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", streams_key(owner))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        match &output.item {
            Some(item) => Ok((
                item.get_json::<OpenStreams>("open_streams")?.unwrap_or_default(),
                item.get_n::<i64>("version")?,
            )),
            None => Ok((OpenStreams::new(), None)),
        }
    }

    /// Writes `open` back if the item is still at `read` (`None`: still
    /// absent); `false` when another open or close changed it first. Gone
    /// by the table's TTL a minute after `last_end`.
    async fn write_streams(
        &self,
        owner: &str,
        open: &OpenStreams,
        read: Option<i64>,
        last_end: i64,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", streams_key(owner))
            .item("open_streams", json(open)?)
            .item("version", n(read.unwrap_or(0) + 1))
            .item("expires_at", n(last_end / 1000 + 60));
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
            let (current, version) = self.read_streams(owner).await?;
            let admission = streams::admit(&current, id, stream, now_ms, limits);
            let StreamAdmission::Admitted(open) = &admission else {
                return Ok(admission);
            };
            let last_end = open.values().map(|s| s.expires_at).max().unwrap_or(now_ms);
            if self.write_streams(owner, open, version, last_end).await? {
                return Ok(admission);
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
            let (mut open, version) = self.read_streams(owner).await?;
            let Some(closed) = open.remove(id) else { return Ok(()) };
            let last_end = open.values().map(|s| s.expires_at).max().unwrap_or(closed.expires_at);
            if self
                .write_streams(owner, &open, Some(version.unwrap_or(0)), last_end)
                .await?
            {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "the open streams of an owner changed under {OPEN_TRIES} closes in a row"
        )))
    }
}
