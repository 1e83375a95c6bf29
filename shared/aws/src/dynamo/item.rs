//! The item codec: how a [`JobRecord`] is stored as a DynamoDB item and read
//! back. Structured fields (input, checkpoint, results, error) are JSON
//! strings, times are numbers, and `due_shard` is present exactly when
//! `due_at` is, which keeps terminal jobs out of the sparse due index.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{due_shard, owner_shard};
use longrun_core::ports::StoreError;
use longrun_core::record::{JobId, JobRecord, JobStatus, Priority};

/// A DynamoDB item: attribute name to value.
pub(super) type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// A number attribute value.
pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A structured value as a JSON string attribute.
pub(super) fn json(value: &(impl Serialize + ?Sized)) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The item a record is stored as.
pub(super) fn to_item(job: &JobRecord) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(job.id.as_str()));
    // `owner_id`, not `owner`: a new record stays out of the legacy owner
    // index (keyed on `owner`) and goes to the sharded one.
    item.insert("owner_id".into(), s(&job.owner));
    item.insert("owner_shard".into(), s(&owner_shard(&job.owner, &job.id)));
    item.insert("job_type".into(), s(&job.job_type));
    item.insert("queue".into(), s(&job.queue));
    item.insert("priority".into(), s(job.priority.as_str()));
    item.insert("status".into(), s(job.status.as_str()));
    item.insert("input".into(), AttributeValue::S(job.input.to_string()));
    item.insert("request_hash".into(), s(&job.request_hash));
    item.insert("attempts".into(), n(i64::from(job.attempts)));
    item.insert("max_attempts".into(), n(i64::from(job.max_attempts)));
    item.insert("timeout_seconds".into(), n(i64::from(job.timeout_seconds)));
    item.insert("progress".into(), n(i64::from(job.progress)));
    item.insert("cancel_requested".into(), AttributeValue::Bool(job.cancel_requested));
    item.insert("created_at".into(), n(job.created_at));
    item.insert("updated_at".into(), n(job.updated_at));
    item.insert("expires_at".into(), n(job.expires_at));
    item.insert("version".into(), n(job.version as i64));
    item.insert("stalled_runs".into(), n(i64::from(job.stalled_runs)));
    item.insert("continuing".into(), AttributeValue::Bool(job.continuing));
    item.insert("takeovers".into(), n(i64::from(job.takeovers)));
    item.insert("redrives".into(), n(i64::from(job.generation)));
    item.insert("resends".into(), n(i64::from(job.resends)));
    let optional_numbers = [
        ("lease_expires_at", job.lease_expires_at),
        ("started_at", job.started_at),
        ("finished_at", job.finished_at),
        ("run_at", job.run_at),
        ("due_at", job.due_at),
    ];
    for (name, value) in optional_numbers {
        if let Some(value) = value {
            item.insert(name.into(), n(value));
        }
    }
    if job.due_at.is_some() {
        item.insert("due_shard".into(), s(&due_shard(&job.id)));
    }
    if let Some(ended_by) = &job.ended_by {
        item.insert("ended_by".into(), s(ended_by));
    }
    if let Some(owner) = &job.lease_token {
        item.insert("lease_owner".into(), s(owner));
    }
    if let Some(message) = &job.progress_message {
        item.insert("progress_message".into(), s(message));
    }
    if let Some(checkpoint) = &job.checkpoint {
        item.insert("checkpoint".into(), AttributeValue::S(checkpoint.to_string()));
    }
    if !job.results.is_empty() {
        item.insert(
            "results".into(),
            AttributeValue::S(serde_json::to_string(&job.results).unwrap_or_default()),
        );
    }
    if let Some(error) = &job.error {
        item.insert(
            "error".into(),
            AttributeValue::S(serde_json::to_string(error).unwrap_or_default()),
        );
    }
    if let Some(callback) = &job.callback {
        item.insert(
            "callback".into(),
            AttributeValue::S(serde_json::to_string(callback).unwrap_or_default()),
        );
    }
    if let Some(limit) = &job.limit {
        item.insert("limit_key".into(), AttributeValue::S(limit.clone()));
    }
    if let Some(tick) = &job.schedule {
        item.insert("schedule_id".into(), s(&tick.schedule_id));
        item.insert("schedule_tick".into(), n(tick.tick_at));
    }
    if let Some(chain) = &job.chain {
        item.insert(
            "chain".into(),
            AttributeValue::S(serde_json::to_string(chain).unwrap_or_default()),
        );
    }
    item
}

/// Decodes an item written by [`to_item`] (or updated since).
pub(super) fn from_item(item: &Item) -> Result<JobRecord, StoreError> {
    let id = JobId::parse(&item.required_s("pk")?).ok_or_else(|| corrupt("pk"))?;
    let status = JobStatus::parse(&item.required_s("status")?).ok_or_else(|| corrupt("status"))?;
    Ok(JobRecord {
        id,
        owner: match item.get_s("owner_id")? {
            Some(owner) => owner,
            None => item.required_s("owner")?,
        },
        job_type: item.required_s("job_type")?,
        queue: item.required_s("queue")?,
        priority: match item.get_s("priority")? {
            None => Priority::Normal,
            Some(raw) => Priority::parse(&raw).ok_or_else(|| corrupt("priority"))?,
        },
        status,
        input: item.get_json("input")?.unwrap_or(serde_json::Value::Null),
        request_hash: item.required_s("request_hash")?,
        attempts: item.get_n("attempts")?.unwrap_or(0),
        max_attempts: item.get_n("max_attempts")?.unwrap_or(1),
        timeout_seconds: item.get_n("timeout_seconds")?.unwrap_or(3600),
        lease_token: item.get_s("lease_owner")?,
        lease_expires_at: item.get_n("lease_expires_at")?,
        ended_by: item.get_s("ended_by")?,
        progress: item.get_n("progress")?.unwrap_or(0),
        progress_message: item.get_s("progress_message")?,
        checkpoint: item.get_json("checkpoint")?,
        results: item.get_json("results")?.unwrap_or_default(),
        error: item.get_json("error")?,
        cancel_requested: item.get_bool("cancel_requested")?.unwrap_or(false),
        created_at: item.get_n("created_at")?.ok_or_else(|| corrupt("created_at"))?,
        updated_at: item.get_n("updated_at")?.unwrap_or(0),
        started_at: item.get_n("started_at")?,
        finished_at: item.get_n("finished_at")?,
        run_at: item.get_n("run_at")?,
        due_at: item.get_n("due_at")?,
        expires_at: item.get_n("expires_at")?.unwrap_or(0),
        version: item.get_n("version")?.unwrap_or(0),
        stalled_runs: item.get_n("stalled_runs")?.unwrap_or(0),
        continuing: item.get_bool("continuing")?.unwrap_or(false),
        takeovers: item.get_n("takeovers")?.unwrap_or(0),
        generation: item.get_n("redrives")?.unwrap_or(0),
        resends: item.get_n("resends")?.unwrap_or(0),
        callback: item.get_json("callback")?,
        chain: item.get_json("chain")?,
        limit: item.get_s("limit_key")?,
        schedule: match (item.get_s("schedule_id")?, item.get_n("schedule_tick")?) {
            (Some(schedule_id), Some(tick_at)) => Some(longrun_core::record::ScheduleTick { schedule_id, tick_at }),
            _ => None,
        },
    })
}

/// Typed reads of an item's attributes. A missing (or NULL) attribute is
/// `None`; one of another type, or one that does not parse, is
/// [`StoreError::Corrupt`].
pub(super) trait Attributes {
    /// A string attribute.
    fn get_s(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// A number attribute, parsed as `T`.
    fn get_n<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError>;
    /// A boolean attribute.
    fn get_bool(&self, name: &str) -> Result<Option<bool>, StoreError>;
    /// A string attribute holding JSON, decoded as `T`.
    fn get_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError>;

    /// A string attribute that must be there.
    fn required_s(&self, name: &str) -> Result<String, StoreError> {
        self.get_s(name)?.ok_or_else(|| corrupt(name))
    }
}

impl Attributes for Item {
    fn get_s(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
            Some(_) => Err(corrupt(name)),
        }
    }

    fn get_n<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value.parse().map(Some).map_err(|_| corrupt(name)),
            Some(_) => Err(corrupt(name)),
        }
    }

    fn get_bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        match self.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(corrupt(name)),
        }
    }

    fn get_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.get_s(name)?
            .map(|raw| serde_json::from_str(&raw).map_err(|_| corrupt(name)))
            .transpose()
    }
}

fn corrupt(field: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {field} missing or malformed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_core::fixtures::queued_job;
    use longrun_core::record::{JobError, ResultObject};
    use serde_json::json;

    #[test]
    fn records_round_trip_through_items() {
        let mut job = queued_job("alice", "report", json!({"group_by": "region", "values": ["amount"]}));
        job.run_at = Some(job.created_at + 5_000);
        job.lease_token = Some("w".into());
        job.checkpoint = Some(json!({"offset": 42}));
        job.results = vec![ResultObject {
            name: "summary.json".into(),
            key: "results/x/summary.json".into(),
            content_type: "application/json".into(),
            bytes: 10,
        }];
        job.error = Some(JobError::retryable("boom", "it broke"));
        (job.takeovers, job.generation, job.resends) = (2, 1, 3);
        job.callback = Some(longrun_core::record::Callback {
            attempts: 2,
            last_status: Some(500),
            ..longrun_core::record::Callback::new("https://example.com/hook")
        });
        job.chain = Some(longrun_core::chain::ChainLink::first(
            &job.id,
            vec![longrun_core::chain::ChainStep {
                job_type: "sleep".into(),
                input: json!({"seconds": 1}),
            }],
        ));
        let item = to_item(&job);
        assert_eq!(item["due_shard"], s(&due_shard(&job.id)));
        assert_eq!(from_item(&item).unwrap(), job);

        job.due_at = None;
        assert!(!to_item(&job).contains_key("due_shard"));
    }

    #[test]
    fn a_record_is_in_one_shard_of_its_owner_and_out_of_the_legacy_index() {
        use super::super::{owner_shards, OWNER_SHARDS};
        let job = longrun_core::fixtures::queued_job("alice", "sleep", json!({}));
        let item = to_item(&job);
        let shards: Vec<String> = owner_shards("alice").collect();
        assert_eq!(shards.len(), OWNER_SHARDS);
        assert!(
            shards.contains(&item["owner_shard"].as_s().unwrap().clone()),
            "{item:?}"
        );
        assert!(!item.contains_key("owner"), "the legacy index is keyed on `owner`");
        // A record written before the index was sharded still decodes.
        let mut legacy = item.clone();
        legacy.remove("owner_id");
        legacy.remove("owner_shard");
        legacy.insert("owner".into(), s("alice"));
        assert_eq!(from_item(&legacy).unwrap(), job);
    }

    #[test]
    fn due_shards_spread_ids_evenly_over_every_shard() {
        use super::super::{due_shards, DUE_SHARDS};
        let shards: Vec<String> = due_shards().collect();
        assert_eq!(shards.len(), DUE_SHARDS);
        let mut counts = std::collections::HashMap::new();
        for i in 0..4_000 {
            let id = if i % 2 == 0 {
                JobId::random()
            } else {
                JobId::for_idempotency_key("alice", &i.to_string())
            };
            let shard = due_shard(&id);
            assert!(shards.contains(&shard), "{shard} is not one the reconciler reads");
            *counts.entry(shard).or_insert(0) += 1;
        }
        // 250 expected per shard; far outside chance if ids did not spread.
        for shard in &shards {
            let count = counts.get(shard).copied().unwrap_or(0);
            assert!((150..=350).contains(&count), "{shard}: {count} of 4000 ids");
        }
    }

    #[test]
    fn malformed_items_are_corrupt_not_panics() {
        let mut item = to_item(&queued_job("o", "t", json!(null)));
        item.insert("status".into(), s("WEIRD"));
        assert!(matches!(from_item(&item), Err(StoreError::Corrupt(_))));
        item.insert("status".into(), n(3));
        assert!(matches!(from_item(&item), Err(StoreError::Corrupt(_))));
    }
}
