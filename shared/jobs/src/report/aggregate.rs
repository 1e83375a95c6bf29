//! A report's aggregation: the object streamed through the CSV reader,
//! rows grouped and summed, progress reported, the summary written as CSV.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;

use longrun_core::job_types::{JobContext, JobResultExt};
use longrun_core::record::{codes, JobError};

use super::csv_records::*;
use super::*;

/// How often a running report reports progress (written at most every
/// `PROGRESS_INTERVAL_MS`) and looks at whether the run must stop (a
/// cancel, a lost lease, the deadline).
pub(super) const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(200);
/// Chunks of the input in flight between the reading and the parsing side.
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;
/// Size of one chunk handed to the parser.
pub(super) const CHUNK_BYTES: usize = 64 * 1024;

/// Streams the CSV and summarises it. Two sides, so the parsing (CPU) never
/// runs on the async runtime and overlaps with the reading (I/O): this task
/// reads the input and hands chunks through a bounded channel to
/// [`aggregate`] on a blocking thread, which parses them where they lie;
/// beside the reading, it reports progress ([`report_progress`]). Memory
/// stays at a few chunks and one record whatever the input's size. If the
/// run stops (an error, cancel, a lost lease), the channel closes and the
/// parser ends after the chunks already sent.
pub(super) async fn summarise(
    ctx: &JobContext,
    mut input: Pin<Box<dyn AsyncRead + Send>>,
    size: Option<u64>,
    group_by: &[String],
    values: &[String],
    limits: ReportLimits,
) -> Result<Summary, JobError> {
    use tokio::io::AsyncReadExt;
    let (chunks, mut received) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let rows = Arc::new(AtomicU64::new(0));
    let parser = {
        let (group_by, values, rows) = (group_by.to_vec(), values.to_vec(), rows.clone());
        tokio::task::spawn_blocking(move || {
            let input = std::iter::from_fn(move || received.blocking_recv());
            aggregate(input, &group_by, &values, limits, &rows)
        })
    };
    let read = AtomicU64::new(0);
    let pump = async {
        let mut ended = false;
        while !ended {
            // Whole chunks (a read gives what one network frame holds), so
            // the parser's thread is woken once per chunk, not per read.
            let mut chunk = bytes::BytesMut::with_capacity(CHUNK_BYTES);
            let mut failed = None;
            while chunk.len() < CHUNK_BYTES {
                match input.read_buf(&mut chunk).await {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if !chunk.is_empty() && chunks.send(Ok(chunk.freeze())).await.is_err() {
                return Ok(()); // the parser stopped: its answer says why
            }
            if let Some(err) = failed {
                // The parser reports it once it has parsed what came before.
                let _ = chunks.send(Err(err)).await;
                return Ok(());
            }
        }
        Ok(())
    };
    // Progress beside the reading, never holding it up.
    let pumped: Result<(), JobError> = tokio::select! {
        pumped = pump => pumped,
        stop = report_progress(ctx, &rows, &read, size) => Err(stop),
    };
    drop(chunks);
    // Progress failing (a cancel, the deadline) stops the run first;
    // otherwise the parser's answer, reading errors included, in file order.
    pumped?;
    match parser.await {
        Ok(parsed) => parsed,
        // A panic is a crash, as a job handler's own would be.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(JobError::permanent(
            codes::INTERNAL,
            format!("the CSV parser failed: {err}"),
        )),
    }
}

/// Every [`PROGRESS_TICK`]: progress if the parser has read rows since the
/// last tick (written at most every `PROGRESS_INTERVAL_MS`), else a look at
/// whether the run must stop. Answers why the run must stop, when it must.
pub(super) async fn report_progress(
    ctx: &JobContext,
    rows: &AtomicU64,
    read: &AtomicU64,
    size: Option<u64>,
) -> JobError {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_TICK, PROGRESS_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_rows = 0;
    loop {
        ticks.tick().await;
        let rows_now = rows.load(Ordering::Relaxed);
        let reported = if rows_now == reported_rows {
            ctx.ensure_running()
        } else {
            reported_rows = rows_now;
            let read = read.load(Ordering::Relaxed);
            let percent = size.filter(|&s| s > 0).map_or(50, |s| (read * 98 / s).min(98) as u8);
            ctx.progress(percent, format!("read {rows_now} rows")).await
        };
        if let Err(stop) = reported {
            return stop;
        }
    }
}

/// Summarises the CSV arriving in `chunks` (blocking: runs on its own
/// thread); `rows_read` follows the rows read, for progress.
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
    group_by: &[String],
    values: &[String],
    limits: ReportLimits,
    rows_read: &AtomicU64,
) -> Result<Summary, JobError> {
    let mut csv = CsvRecords::new(chunks, limits.max_record_bytes);
    let headers: Vec<String> = if csv.next_record()? {
        (0..csv.len())
            .map(|i| String::from_utf8(csv.cell(i).to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| JobError::permanent(INVALID_CSV, format!("line {}: the header is not UTF-8", csv.line)))?
    } else {
        Vec::new()
    };
    let group_idx: Vec<usize> = group_by
        .iter()
        .map(|c| column_index(&headers, c))
        .collect::<Result<_, _>>()?;
    let value_idx: Vec<usize> = values
        .iter()
        .map(|c| column_index(&headers, c))
        .collect::<Result<_, _>>()?;

    // Groups in order of first appearance; `index` finds one by its key's
    // cells, encoded into `key` (each cell's length, then its bytes), so a
    // row of a group already seen allocates nothing.
    let mut found: Vec<(Vec<String>, u64, Vec<ColumnStats>)> = Vec::new();
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut held_bytes: usize = 0;
    let mut key: Vec<u8> = Vec::new();
    let mut rows: u64 = 0;
    while csv.next_record()? {
        rows += 1;
        let line = csv.line;
        if csv.len() != headers.len() {
            return Err(JobError::permanent(
                INVALID_CSV,
                format!(
                    "line {line}: the record has {} fields, the header {}",
                    csv.len(),
                    headers.len()
                ),
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
            rows_read.store(rows, Ordering::Relaxed);
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
    Ok(Summary {
        group_by: group_by.to_vec(),
        values: values.to_vec(),
        rows,
        groups,
    })
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
