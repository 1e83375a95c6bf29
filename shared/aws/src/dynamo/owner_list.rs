//! Listing an owner's jobs over the sharded owner index: one Query per
//! shard ([`super::owner_shards`]) and one of the legacy index (records
//! written before the index was sharded), merged newest first, in the same
//! order and pages as one index would give: (`created_at`, id) descending,
//! `limit` jobs a page before the status filter, a cursor after the page's
//! last job.
//!
//! Each source returns its items newest first. An item is placed only once
//! every source that may hold more has returned items at least as old (its
//! last item is older, or it has nothing more); a source whose last item
//! holds the page back is read further. So a page costs one Query per
//! source, and more only when one source's items crowd out the others.

use super::item::{self, n, s, Attributes, Item};
use super::{owner_shards, DynamoJobStore, LEGACY_OWNER_INDEX, OWNER_INDEX};
use crate::describe;
use longrun_core::list_cursor;
use longrun_core::ports::{JobPage, StoreError};
use longrun_core::record::{JobRecord, JobStatus};

/// One partition of an owner index and how far it has been read.
struct Source {
    index: &'static str,
    key_attribute: &'static str,
    key: String,
    items: Vec<JobRecord>,
    next: Option<Item>,
    started: bool,
}

impl Source {
    fn more(&self) -> bool {
        !self.started || self.next.is_some()
    }

    /// The newest `created_at` this source may still hold unread.
    fn frontier(&self) -> Option<i64> {
        if !self.more() {
            return None;
        }
        Some(self.items.last().map_or(i64::MAX, |j| j.created_at))
    }
}

/// Orders newest first: `created_at`, then id, both descending.
fn newest_first(a: &JobRecord, b: &JobRecord) -> std::cmp::Ordering {
    (b.created_at, &b.id).cmp(&(a.created_at, &a.id))
}

impl DynamoJobStore {
    /// [`longrun_core::ports::JobLifecycle::list_by_owner`] on the owner
    /// index's shards and the legacy index.
    pub(super) async fn list_owned(
        &self,
        owner: &str,
        status: Option<JobStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let after = cursor.map(|c| list_cursor::decode(c, owner)).transpose()?;
        let mut sources: Vec<Source> = owner_shards(owner)
            .map(|key| Source {
                index: OWNER_INDEX,
                key_attribute: "owner_shard",
                key,
                items: Vec::new(),
                next: None,
                started: false,
            })
            .collect();
        sources.push(Source {
            index: LEGACY_OWNER_INDEX,
            key_attribute: "owner",
            key: owner.to_owned(),
            items: Vec::new(),
            next: None,
            started: false,
        });
        loop {
            let bound = sources.iter().filter_map(Source::frontier).max();
            let placed = sources
                .iter()
                .flat_map(|s| s.items.iter())
                .filter(|j| bound.is_none_or(|b| j.created_at > b))
                .count();
            if placed >= limit || bound.is_none() {
                break;
            }
            // Read further every source that holds the page back.
            let reads = sources
                .iter_mut()
                .filter(|s| s.frontier() == bound)
                .map(|source| self.read_more(source, after.as_ref(), limit));
            for read in futures_util::future::join_all(reads).await {
                read?;
            }
        }
        let bound = sources.iter().filter_map(Source::frontier).max();
        let mut all: Vec<JobRecord> = sources.into_iter().flat_map(|s| s.items).collect();
        all.sort_by(newest_first);
        // Only jobs newer than every unread rest may be placed (a prefix).
        let placeable = all
            .iter()
            .take_while(|j| bound.is_none_or(|b| j.created_at > b))
            .count();
        let more = bound.is_some() || all.len() > limit;
        all.truncate(placeable.min(limit));
        let next_cursor = all
            .last()
            .filter(|_| more)
            .map(|j| list_cursor::encode(j.created_at, j.id.as_str(), owner));
        Ok(JobPage {
            jobs: all
                .into_iter()
                .filter(|j| status.is_none_or(|s| j.status == s))
                .collect(),
            next_cursor,
        })
    }

    /// One more Query of `source`: its next items newest first, after the
    /// cursor's position (`created_at` at most the cursor's, and past the
    /// cursor's job among those of its millisecond).
    async fn read_more(
        &self,
        source: &mut Source,
        after: Option<&(i64, longrun_core::JobId)>,
        limit: usize,
    ) -> Result<(), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(source.index)
            .expression_attribute_names("#key", source.key_attribute)
            .expression_attribute_values(":key", s(&source.key))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(source.next.take());
        query = match after {
            Some((created, _)) => query
                .key_condition_expression("#key = :key AND #created_at <= :created")
                .expression_attribute_names("#created_at", "created_at")
                .expression_attribute_values(":created", n(*created)),
            None => query.key_condition_expression("#key = :key"),
        };
        let output = query.send().await.map_err(|e| StoreError::Unavailable(describe(&e)))?;
        source.started = true;
        source.next = output.last_evaluated_key.clone().filter(|k| !k.is_empty());
        for raw in output.items() {
            // A job item, not another kind of item that shares the key.
            if raw.get_s("job_type")?.is_none() {
                continue;
            }
            let job = item::from_item(raw)?;
            let past_cursor = after.is_none_or(|(created, id)| (job.created_at, &job.id) < (*created, id));
            if past_cursor {
                source.items.push(job);
            }
        }
        Ok(())
    }
}
