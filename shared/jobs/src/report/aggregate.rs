//! A report's aggregation on the parser thread: CSV records grouped and
//! summed (from the start, or from a checkpoint), snapshots taken at record
//! boundaries when asked, the summary written as CSV.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use longrun_core::job_types::JobResultExt;
use longrun_core::record::{codes, JobError};

use super::checkpoint::{saved_stats, Ask, Asks, ReportCheckpoint, SavedGroup, SavedGroups, Snapshot};
use super::csv_records::*;
use super::*;
/// A group: its key's cells, its rows, its statistics per value column.
pub(super) type Group = (Vec<String>, u64, Vec<ColumnStats>);

/// What a report summarises, and within which limits.
pub(super) struct Spec {
    pub(super) group_by: Vec<String>,
    pub(super) values: Vec<String>,
    pub(super) limits: ReportLimits,
    /// The version of the input object read, kept in every checkpoint.
    pub(super) etag: Option<String>,
}

/// Where a run resumes: the checkpoint and the groups it saved.
pub(super) struct Resume {
    pub(super) at: ReportCheckpoint,
    pub(super) groups: Vec<SavedGroup>,
}

/// What the parser answers: the summary, or where it stopped when asked to.
#[derive(Debug)]
pub(super) enum Parsed {
    Done(Summary),
    Stopped(Snapshot),
}

/// What the parser thread shares with the reading side.
pub(super) struct ParserSide {
    /// The rows read so far, for progress.
    pub(super) rows_read: Arc<AtomicU64>,
    /// Snapshots asked for.
    pub(super) asks: Arc<Asks>,
    /// Where snapshots to save (and go on) are sent.
    pub(super) saves: tokio::sync::mpsc::Sender<Snapshot>,
}

/// Summarises the CSV arriving in `chunks` (blocking: runs on its own
/// thread), from its start or from where `resume` left off; `side` follows
/// the rows read, for progress, and takes the snapshots asked for (after
/// `SaveAndStop` the answer is the snapshot).
///
/// Only the cells the report uses are looked at. Each is trimmed of
/// whitespace and must be UTF-8; the common case is checked cheaply and
/// exactly: a group key whose cells, trimmed of ASCII whitespace, are a
/// group's already seen is that group (its cells were checked when it was
/// found, and a cell that equals a Unicode-trimmed one after ASCII trimming
/// has no other whitespace to trim), and a value that parses as a number
/// after ASCII trimming is that number. Anything else takes the full path
/// (Unicode trimming, UTF-8 checked, the error with its place).
pub(super) fn aggregate(
    chunks: impl Iterator<Item = std::io::Result<Bytes>>,
    spec: &Spec,
    side: &ParserSide,
    resume: Option<Resume>,
) -> Result<Parsed, JobError> {
    let (group_by, values, limits) = (spec.group_by.as_slice(), spec.values.as_slice(), spec.limits);
    let (mut csv, columns, group_idx, value_idx, mut found, mut rows) = match resume {
        Some(Resume { at, groups }) => {
            if at.group_idx.iter().chain(&at.value_idx).any(|&i| i >= at.columns)
                || (at.group_idx.len(), at.value_idx.len()) != (group_by.len(), values.len())
            {
                return Err(JobError::permanent(
                    codes::INVALID_CHECKPOINT,
                    "the checkpoint's columns do not fit the report",
                ));
            }
            let csv = CsvRecords::resume(chunks, limits.max_record_bytes, at.offset, at.line);
            let found: Vec<Group> = groups
                .into_iter()
                .map(|group| {
                    let stats = group.stats();
                    (group.0, group.1, stats)
                })
                .collect();
            (csv, at.columns, at.group_idx, at.value_idx, found, at.rows)
        }
        None => {
            let mut csv = CsvRecords::new(chunks, limits.max_record_bytes);
            let headers = read_header(&mut csv)?;
            let index_of = |columns: &[String]| -> Result<Vec<usize>, JobError> {
                columns.iter().map(|c| column_index(&headers, c)).collect()
            };
            let (group_idx, value_idx) = (index_of(group_by)?, index_of(values)?);
            (csv, headers.len(), group_idx, value_idx, Vec::new(), 0)
        }
    };

    // Groups in order of first appearance; `index` finds one by its key's
    // cells, encoded into `key` (each cell's length, then its bytes), so a
    // row of a group already seen allocates nothing.
    let mut index: HashMap<Vec<u8>, usize> = HashMap::with_capacity(found.len());
    let mut held_bytes: usize = 0;
    let mut key: Vec<u8> = Vec::new();
    for (i, (cells, _, _)) in found.iter().enumerate() {
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        held_bytes += group_bytes(&cells, value_idx.len());
        encode_key(&mut key, cells.iter().map(|c| c.as_bytes()));
        index.insert(key.clone(), i);
    }
    while csv.next_record()? {
        rows += 1;
        let line = csv.line;
        if csv.len() != columns {
            return Err(JobError::permanent(
                INVALID_CSV,
                format!("line {line}: the record has {} fields, the header {columns}", csv.len()),
            ));
        }
        let seen = match group_idx.as_slice() {
            [only] => index.get(csv.cell(*only).trim_ascii()),
            _ => {
                encode_key(&mut key, group_idx.iter().map(|&i| csv.cell(i).trim_ascii()));
                index.get(key.as_slice())
            }
        };
        let group = match seen {
            Some(&group) => group,
            None => {
                let cells = group_idx
                    .iter()
                    .zip(group_by)
                    .map(|(&i, name)| utf8_cell(csv.cell(i), name, line))
                    .collect::<Result<Vec<&str>, JobError>>()?;
                encode_key(&mut key, cells.iter().map(|c| c.as_bytes()));
                match index.get(key.as_slice()) {
                    Some(&group) => group,
                    None if found.len() >= limits.max_groups => {
                        return Err(JobError::permanent(
                            TOO_MANY_GROUPS,
                            format!(
                                "line {line}: the report has more than {} groups (MAX_REPORT_GROUPS)",
                                limits.max_groups
                            ),
                        ));
                    }
                    None if held_bytes + group_bytes(&cells, value_idx.len()) > limits.max_group_bytes => {
                        return Err(JobError::permanent(
                            TOO_MANY_GROUPS,
                            format!(
                                "line {line}: the report's {} groups need more than {} bytes of memory \
                                 (MAX_REPORT_GROUP_BYTES): group by shorter columns",
                                found.len(),
                                limits.max_group_bytes
                            ),
                        ));
                    }
                    None => {
                        held_bytes += group_bytes(&cells, value_idx.len());
                        found.push((
                            cells.into_iter().map(str::to_owned).collect(),
                            0,
                            vec![ColumnStats::default(); value_idx.len()],
                        ));
                        index.insert(key.clone(), found.len() - 1);
                        found.len() - 1
                    }
                }
            }
        };
        let entry = &mut found[group];
        entry.1 += 1;
        for (stats, (&i, name)) in entry.2.iter_mut().zip(value_idx.iter().zip(values)) {
            let cell = csv.cell(i);
            let trimmed = cell.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            let value = match std::str::from_utf8(trimmed)
                .ok()
                .and_then(|text| text.parse::<f64>().ok())
            {
                Some(value) => value,
                None => {
                    let text = utf8_cell(cell, name, line)?;
                    if text.is_empty() {
                        continue;
                    }
                    text.parse().map_err(|_| {
                        JobError::permanent(
                            "invalid_number",
                            format!(
                                "line {line}, column {}: {} is not a number",
                                excerpt(name),
                                excerpt(text)
                            ),
                        )
                    })?
                }
            };
            if !value.is_finite() {
                return Err(JobError::permanent(
                    "invalid_number",
                    format!(
                        "line {line}, column {}: {} is not a finite number",
                        excerpt(name),
                        excerpt(utf8_cell(cell, name, line)?)
                    ),
                ));
            }
            stats.add(value);
        }
        if rows.is_multiple_of(ROWS_PER_PROGRESS) {
            side.rows_read.store(rows, Ordering::Relaxed);
        }
        let ask = side.asks.take(rows);
        if ask != Ask::Nothing {
            let (offset, line) = csv.position();
            let at = ReportCheckpoint {
                offset,
                line,
                rows,
                columns,
                group_idx: group_idx.clone(),
                value_idx: value_idx.clone(),
                groups: SavedGroups::Inline(serde_json::Value::Null),
                etag: spec.etag.clone(),
            };
            let groups = serde_json::to_vec(&GroupsJson(&found)).permanent(codes::INTERNAL)?;
            let snapshot = Snapshot { at, groups };
            if ask == Ask::SaveAndStop {
                return Ok(Parsed::Stopped(snapshot));
            }
            // One waiting to be written is enough; this one is skipped.
            let _ = side.saves.try_send(snapshot);
        }
    }

    // Sorted by key, as the summary has always listed its groups.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let groups = found
        .into_iter()
        .map(|(key, group_rows, mut stats)| {
            stats.iter_mut().for_each(ColumnStats::finish);
            GroupSummary {
                key: group_by.iter().cloned().zip(key).collect(),
                rows: group_rows,
                stats: values.iter().cloned().zip(stats).collect(),
            }
        })
        .collect();
    Ok(Parsed::Done(Summary {
        group_by: group_by.to_vec(),
        values: values.to_vec(),
        rows,
        groups,
    }))
}

/// The header's column names (none for an empty input).
fn read_header<C: Iterator<Item = std::io::Result<Bytes>>>(csv: &mut CsvRecords<C>) -> Result<Vec<String>, JobError> {
    if !csv.next_record()? {
        return Ok(Vec::new());
    }
    (0..csv.len())
        .map(|i| String::from_utf8(csv.cell(i).to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|_| JobError::permanent(INVALID_CSV, format!("line {}: the header is not UTF-8", csv.line)))
}

/// The groups as JSON, without a copy of them: a list of
/// [`SavedGroup`](super::checkpoint::SavedGroup)s.
struct GroupsJson<'a>(&'a [Group]);

impl serde::Serialize for GroupsJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, rows, stats)| (key, rows, saved_stats(stats))))
    }
}

/// Encodes a group's key cells into `key`: each cell's length, then its
/// bytes, so keys split differently never collide; a key of one cell is
/// its bytes alone (nothing to split), so it is found by the cell itself.
/// About how much memory one group holds: its key's cells twice (as the
/// group's own strings and in the index's encoded key) with their
/// allocations, its statistics per value column, and the map's entry.
pub(super) fn group_bytes(cells: &[&str], value_columns: usize) -> usize {
    let key: usize = cells.iter().map(|c| c.len()).sum();
    2 * key + 32 * cells.len() + std::mem::size_of::<ColumnStats>() * value_columns + 128
}

pub(super) fn encode_key<'a>(key: &mut Vec<u8>, cells: impl ExactSizeIterator<Item = &'a [u8]>) {
    key.clear();
    if cells.len() == 1 {
        cells.for_each(|cell| key.extend_from_slice(cell));
        return;
    }
    for cell in cells {
        key.extend_from_slice(&(cell.len() as u64).to_le_bytes());
        key.extend_from_slice(cell);
    }
}

pub(super) fn summary_csv(summary: &Summary) -> Result<Vec<u8>, JobError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = summary.group_by.clone();
    header.push("rows".into());
    for value in &summary.values {
        for stat in ["count", "sum", "min", "max", "mean"] {
            header.push(format!("{value}_{stat}"));
        }
    }
    writer.write_record(&header).permanent(codes::INTERNAL)?;
    for group in &summary.groups {
        let mut row: Vec<String> = summary.group_by.iter().map(|c| group.key[c].clone()).collect();
        row.push(group.rows.to_string());
        for value in &summary.values {
            let s = &group.stats[value];
            row.extend([
                s.count.to_string(),
                s.sum.to_string(),
                s.min.to_string(),
                s.max.to_string(),
                s.mean.to_string(),
            ]);
        }
        writer.write_record(&row).permanent(codes::INTERNAL)?;
    }
    writer.into_inner().permanent(codes::INTERNAL)
}
