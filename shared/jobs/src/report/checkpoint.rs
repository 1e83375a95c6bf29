//! A report's checkpoint: where in the CSV the next run starts (a record
//! boundary: the byte offset and line the reader stood on), the rows and
//! groups summed before it — in the record when small, in a state object
//! under the run's result prefix when not — so a run that stops (its
//! invocation's end, a crash) is resumed exactly there, and the summary is
//! the one an uninterrupted run writes, to the byte: sums go on in the same
//! order, and every float is saved as its bit pattern.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use longrun_core::job_types::{JobContext, JobResultExt};
use longrun_core::record::{codes, JobError};

use super::ColumnStats;

/// Groups whose JSON is at most this long go in the job record; larger
/// ones in a state object (every status read reads the record).
pub(super) const INLINE_GROUP_BYTES: usize = 8 * 1024;

/// What a report saves for the next run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportCheckpoint {
    /// The byte offset in the CSV of the first record not summed yet.
    pub(super) offset: u64,
    /// The line the reader stood on there.
    pub(super) line: u64,
    /// Rows summed before it.
    pub(super) rows: u64,
    /// The header's number of fields.
    pub(super) columns: usize,
    /// The group-by columns, by index in the header.
    pub(super) group_idx: Vec<usize>,
    /// The value columns, by index in the header.
    pub(super) value_idx: Vec<usize>,
    /// The groups summed so far.
    pub(super) groups: SavedGroups,
    /// The version of the input object read (its ETag): a run resuming
    /// reads only that version, so an input replaced mid-report fails
    /// `input_changed` rather than sum parts of two objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) etag: Option<String>,
}

/// Where a checkpoint's groups are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SavedGroups {
    /// In the checkpoint: a JSON list of [`SavedGroup`]s.
    Inline(serde_json::Value),
    /// In the state object with this key.
    Object(String),
}

/// One group as saved: its key's cells, its rows, and per value column the
/// count and the bit patterns of sum, min and max.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedGroup(pub Vec<String>, pub u64, pub Vec<[u64; 4]>);

impl SavedGroup {
    /// The group's statistics, exactly as saved.
    pub(super) fn stats(&self) -> Vec<ColumnStats> {
        self.2
            .iter()
            .map(|[count, sum, min, max]| ColumnStats {
                count: *count,
                sum: f64::from_bits(*sum),
                min: f64::from_bits(*min),
                max: f64::from_bits(*max),
                mean: 0.0,
            })
            .collect()
    }
}

/// A group's statistics as saved.
pub(super) fn saved_stats(stats: &[ColumnStats]) -> Vec<[u64; 4]> {
    stats
        .iter()
        .map(|s| [s.count, s.sum.to_bits(), s.min.to_bits(), s.max.to_bits()])
        .collect()
}

/// The parser's state at a record boundary, on its way to being saved.
#[derive(Debug)]
pub(super) struct Snapshot {
    /// The checkpoint, its groups still to be placed.
    pub(super) at: ReportCheckpoint,
    /// The groups, as JSON (a list of [`SavedGroup`]s).
    pub(super) groups: Vec<u8>,
}

/// What the parser thread is asked for at its next record boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// Nothing: go on.
    Nothing,
    /// A snapshot (sent on), then go on.
    Save,
    /// A snapshot, then stop: the run is about to end.
    SaveAndStop,
}

/// Requests from the reading side to the parser thread, looked at after
/// every record (two relaxed loads).
#[derive(Debug)]
pub(super) struct Asks {
    ask: AtomicU8,
    /// Tests: stop once this many rows are summed.
    stop_at_rows: AtomicU64,
}

impl Default for Asks {
    fn default() -> Self {
        Asks {
            ask: AtomicU8::new(0),
            stop_at_rows: AtomicU64::new(u64::MAX),
        }
    }
}

impl Asks {
    /// Asks for `ask` at the next boundary (a stop is never downgraded).
    pub(super) fn ask(&self, ask: Ask) {
        let code = match ask {
            Ask::Nothing => 0,
            Ask::Save => 1,
            Ask::SaveAndStop => 2,
        };
        self.ask.fetch_max(code, Ordering::Relaxed);
    }

    /// Makes the parser stop (with a snapshot) once `rows` rows are summed.
    #[cfg(test)]
    pub(super) fn stop_at_rows(&self, rows: u64) {
        self.stop_at_rows.store(rows, Ordering::Relaxed);
    }

    /// What the parser must do now, `rows` rows summed; the ask is taken.
    pub(super) fn take(&self, rows: u64) -> Ask {
        if rows >= self.stop_at_rows.load(Ordering::Relaxed) {
            self.stop_at_rows.store(u64::MAX, Ordering::Relaxed);
            return Ask::SaveAndStop;
        }
        if self.ask.load(Ordering::Relaxed) == 0 {
            return Ask::Nothing;
        }
        match self.ask.swap(0, Ordering::Relaxed) {
            2 => Ask::SaveAndStop,
            1 => Ask::Save,
            _ => Ask::Nothing,
        }
    }
}

/// Saves `snapshot` as the job's checkpoint, its groups in the record or
/// in a state object, whatever the time since the last progress write.
pub(super) async fn save(ctx: &JobContext, snapshot: Snapshot, percent: u8) -> Result<(), JobError> {
    let Snapshot { mut at, groups } = snapshot;
    at.groups = if groups.len() <= INLINE_GROUP_BYTES {
        SavedGroups::Inline(serde_json::from_slice(&groups).permanent(codes::INTERNAL)?)
    } else {
        let name = format!("report-groups-{}.json", at.offset);
        SavedGroups::Object(ctx.put_state(&name, Bytes::from(groups)).await?)
    };
    tracing::info!(offset = at.offset, rows = at.rows, "report checkpoint saved");
    ctx.checkpoint_now(percent, format!("read {} rows", at.rows), &at).await
}

/// The groups `checkpoint` saved, read back (at most `max_bytes` of JSON
/// from a state object).
pub(super) async fn saved_groups(
    ctx: &JobContext,
    checkpoint: &ReportCheckpoint,
    max_bytes: u64,
) -> Result<Vec<SavedGroup>, JobError> {
    match &checkpoint.groups {
        SavedGroups::Inline(groups) => serde_json::from_value(groups.clone()).permanent(codes::INVALID_CHECKPOINT),
        SavedGroups::Object(key) => {
            let body = ctx.read_state(key, max_bytes).await?;
            serde_json::from_slice(&body).permanent(codes::INVALID_CHECKPOINT)
        }
    }
}
