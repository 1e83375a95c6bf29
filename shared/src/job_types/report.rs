//! `report`: a grouped summary of a CSV file.
//!
//! Input: `{"source": {"key": "inputs/…csv"} | {"csv": "…inline…"},
//! "group_by": ["col", …], "values": ["col", …]}`. The CSV is streamed
//! (memory grows with the number of groups, never with the file), and for
//! every group and value column it computes count, sum, min, max and mean
//! (blank cells are skipped; anything else that is not a number fails the
//! job with the line and column). Writes `summary.json` and `summary.csv`.
//!
//! Bounded by [`ReportLimits`]: a header or record longer than
//! `MAX_CSV_RECORD_BYTES` fails the job (`csv_record_too_long`) as soon as
//! that many bytes have gone by without the record ending, before the CSV
//! reader has buffered more; a report with more than `MAX_REPORT_GROUPS`
//! groups fails (`too_many_groups`) at the first group past the cap. Error
//! messages quote cells and column names only in short excerpts.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, ReadBuf};

use super::input::{check_input_key, field_error};
use super::{JobContext, TypedJob};
use crate::api::FieldError;
use crate::config::Config;
use crate::record::{codes, shorten, JobError, ResultObject};

/// Rows between two progress reports.
const ROWS_PER_PROGRESS: u64 = 2_000;
/// Most group-by and value columns a report may name.
const MAX_COLUMNS: usize = 32;
/// The longest column name a report may name, in bytes.
const MAX_COLUMN_NAME_BYTES: usize = 256;
/// The most bytes of a cell or column name an error message quotes.
const MAX_EXCERPT_BYTES: usize = 40;
/// The most CSV columns an error message lists (with the excerpts, well
/// within a job error message's bound).
const MAX_LISTED_COLUMNS: usize = 8;

/// Error code: a CSV header or record is longer than `MAX_CSV_RECORD_BYTES` (permanent).
const CSV_RECORD_TOO_LONG: &str = "csv_record_too_long";
/// Error code: the report has more than `MAX_REPORT_GROUPS` groups (permanent).
const TOO_MANY_GROUPS: &str = "too_many_groups";

/// How much of a CSV a report holds in memory at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLimits {
    /// The longest header or record read, in bytes (`MAX_CSV_RECORD_BYTES`).
    pub max_record_bytes: usize,
    /// The most distinct groups summarised (`MAX_REPORT_GROUPS`).
    pub max_groups: usize,
}

impl ReportLimits {
    /// The limits the configuration sets.
    pub fn from_config(config: &Config) -> Self {
        ReportLimits {
            max_record_bytes: config.max_csv_record_bytes,
            max_groups: config.max_report_groups,
        }
    }
}

/// The `report` job type.
pub struct ReportJob {
    limits: ReportLimits,
}

impl ReportJob {
    /// Reads CSVs within `limits`.
    pub fn new(limits: ReportLimits) -> Self {
        ReportJob { limits }
    }
}

/// The input of a `report` job (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    source: Source,
    group_by: Vec<String>,
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    key: Option<String>,
    csv: Option<String>,
}

/// Running statistics of one value column within one group.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ColumnStats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl Default for ColumnStats {
    fn default() -> Self {
        ColumnStats {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            mean: 0.0,
        }
    }
}

impl ColumnStats {
    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn finish(&mut self) {
        if self.count == 0 {
            self.min = 0.0;
            self.max = 0.0;
        } else {
            self.mean = self.sum / self.count as f64;
        }
    }
}

#[derive(Debug, Serialize)]
struct GroupSummary {
    key: BTreeMap<String, String>,
    rows: u64,
    stats: BTreeMap<String, ColumnStats>,
}

#[derive(Debug, Serialize)]
struct Summary {
    group_by: Vec<String>,
    values: Vec<String>,
    rows: u64,
    groups: Vec<GroupSummary>,
}

#[async_trait]
impl TypedJob for ReportJob {
    type Input = ReportInput;

    fn job_type(&self) -> &'static str {
        "report"
    }

    fn input_keys(&self, input: &ReportInput) -> Vec<(&'static str, String)> {
        input
            .source
            .key
            .iter()
            .map(|key| ("input.source.key", key.clone()))
            .collect()
    }

    fn check(&self, input: &ReportInput) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        match (&input.source.key, &input.source.csv) {
            (Some(key), None) => errors.extend(check_input_key("input.source.key", key).err()),
            (None, Some(_)) => {}
            _ => errors.push(field_error("input.source", "give exactly one of key or csv")),
        }
        for (field, columns) in [("input.group_by", &input.group_by), ("input.values", &input.values)] {
            if columns.is_empty() || columns.len() > MAX_COLUMNS {
                errors.push(field_error(field, format!("name between 1 and {MAX_COLUMNS} columns")));
            }
            if columns.iter().any(|c| c.trim().is_empty()) {
                errors.push(field_error(field, "column names must not be blank"));
            }
            if columns.iter().any(|c| c.len() > MAX_COLUMN_NAME_BYTES) {
                errors.push(field_error(
                    field,
                    format!("column names must be at most {MAX_COLUMN_NAME_BYTES} bytes"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn run(&self, ctx: &JobContext, input: ReportInput) -> Result<Vec<ResultObject>, JobError> {
        let (size, reader): (Option<u64>, Pin<Box<dyn AsyncRead + Send>>) = match (&input.source.key, &input.source.csv)
        {
            (Some(key), _) => {
                let object = ctx.open_input(key).await?;
                (object.size, object.body)
            }
            (None, Some(csv)) => {
                let bytes = Bytes::from(csv.clone());
                (Some(bytes.len() as u64), Box::pin(std::io::Cursor::new(bytes)))
            }
            (None, None) => return Err(JobError::permanent(codes::INVALID_INPUT, "no source")),
        };
        let summary = summarise(ctx, reader, size, &input.group_by, &input.values, self.limits).await?;
        ctx.progress(99, "writing results").await?;
        let json = serde_json::to_vec_pretty(&summary).map_err(|e| JobError::permanent("internal", e.to_string()))?;
        let csv = summary_csv(&summary)?;
        let json_result = ctx
            .put_result("summary.json", Bytes::from(json), "application/json")
            .await?;
        let csv_result = ctx.put_result("summary.csv", Bytes::from(csv), "text/csv").await?;
        Ok(vec![json_result, csv_result])
    }
}

/// Where a CSV reader is within the CSV's syntax, as far as telling where a
/// record ends needs: a line break ends a record except inside quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CsvScan {
    /// At the start of a field, where a quote opens a quoted field.
    FieldStart,
    /// In an unquoted field (a quote here is just a character).
    Unquoted,
    /// In a quoted field, where line breaks and commas are data.
    Quoted,
    /// Just after a quote in a quoted field: it closed the field, or it is
    /// the first of a doubled (escaped) quote.
    QuoteInQuoted,
}

/// A CSV header or record longer than the limit, found while reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the CSV record starting at line {line} is longer than {max_bytes} bytes (MAX_CSV_RECORD_BYTES)")]
struct RecordTooLong {
    /// The line the record starts on (1 is the header).
    line: u64,
    /// The limit it broke.
    max_bytes: usize,
}

/// Fails the read, with [`RecordTooLong`], once a CSV record has run past
/// `max_record_bytes` without ending, so the CSV reader (whose record buffer
/// grows without bound) never holds more than that much of one record. It
/// follows the syntax the reader parses (RFC 4180: `,`, `"` quoting with
/// doubled quotes, `\r` and `\n` ending records), so line breaks inside quoted
/// fields do not end a record.
struct BoundedRecords<R> {
    inner: R,
    max_record_bytes: usize,
    scan: CsvScan,
    /// Bytes of the current record so far (line breaks ending it excluded).
    record_bytes: usize,
    /// The line being read, from 1.
    line: u64,
    /// The line the current record started on.
    record_line: u64,
    /// Set once a record was too long: every later read fails the same way.
    too_long: Option<RecordTooLong>,
}

impl<R> BoundedRecords<R> {
    fn new(inner: R, max_record_bytes: usize) -> Self {
        BoundedRecords {
            inner,
            max_record_bytes,
            scan: CsvScan::FieldStart,
            record_bytes: 0,
            line: 1,
            record_line: 1,
            too_long: None,
        }
    }

    /// Follows `bytes` through the CSV syntax; the first record running past
    /// the limit is an error, with how many bytes of the slice before it are
    /// whole records (the parser gets those, so an error in them still comes
    /// first). Runs of plain data are skipped in bulk with
    /// `memchr` (outside quotes: up to the next quote or line break, commas
    /// included; inside quotes: up to the next quote); only the bytes that
    /// can change the state go through [`Self::step`].
    fn follow(&mut self, bytes: &[u8]) -> Result<(), (usize, RecordTooLong)> {
        let mut complete = 0;
        let mut rest = bytes;
        while let Some(&byte) = rest.first() {
            let run = match self.scan {
                CsvScan::Quoted => memchr::memchr(b'"', rest).unwrap_or(rest.len()),
                CsvScan::FieldStart | CsvScan::Unquoted => {
                    memchr::memchr3(b'"', b'\n', b'\r', rest).unwrap_or(rest.len())
                }
                CsvScan::QuoteInQuoted => 0,
            };
            let taken = if run == 0 {
                self.step(byte).map(|()| 1)
            } else {
                self.skip(&rest[..run]).map(|()| run)
            };
            rest = &rest[taken.map_err(|too_long| (complete, too_long))?..];
            if self.record_bytes == 0 {
                complete = bytes.len() - rest.len();
            }
        }
        Ok(())
    }

    /// Follows a run of plain data of the current state: inside quotes, up to
    /// the next quote (line breaks included, still counted as lines); outside,
    /// neither quotes nor line breaks, so a quote right after it opens a
    /// quoted field only if a comma ends it.
    fn skip(&mut self, run: &[u8]) -> Result<(), RecordTooLong> {
        if self.scan == CsvScan::Quoted {
            self.line += memchr::memchr_iter(b'\n', run).count() as u64;
        } else if self.record_bytes == 0 {
            self.record_line = self.line;
        }
        self.grow(run.len())?;
        if self.scan != CsvScan::Quoted {
            self.scan = if run.last() == Some(&b',') {
                CsvScan::FieldStart
            } else {
                CsvScan::Unquoted
            };
        }
        Ok(())
    }

    /// The current record is `bytes` longer; past the limit is an error.
    fn grow(&mut self, bytes: usize) -> Result<(), RecordTooLong> {
        self.record_bytes += bytes;
        if self.record_bytes > self.max_record_bytes {
            return Err(RecordTooLong {
                line: self.record_line,
                max_bytes: self.max_record_bytes,
            });
        }
        Ok(())
    }

    /// Follows one byte.
    fn step(&mut self, byte: u8) -> Result<(), RecordTooLong> {
        use CsvScan::*;
        let line_break = byte == b'\n' || byte == b'\r';
        if byte == b'\n' {
            self.line += 1;
        }
        if line_break && self.scan != Quoted {
            self.scan = FieldStart;
            self.record_bytes = 0;
            return Ok(());
        }
        if self.record_bytes == 0 {
            self.record_line = self.line;
        }
        self.grow(1)?;
        self.scan = match (self.scan, byte) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (QuoteInQuoted, b'"') => Quoted,
            (FieldStart, b'"') => Quoted,
            (_, b',') => FieldStart,
            _ => Unquoted,
        };
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for BoundedRecords<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(too_long) = this.too_long {
            return Poll::Ready(Err(std::io::Error::other(too_long)));
        }
        let before = buf.filled().len();
        if let Err(err) = std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf)) {
            return Poll::Ready(Err(err));
        }
        let followed = this.follow(&buf.filled()[before..]);
        if let Err((complete, too_long)) = followed {
            // The whole records before the long one pass; the next read fails.
            buf.set_filled(before + complete);
            this.too_long = Some(too_long);
            if complete == 0 {
                return Poll::Ready(Err(std::io::Error::other(too_long)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The CSV parser's error as a job error: the input could not be read
/// ([`read_error`]), or the CSV is unreadable.
fn csv_error(err: csv::Error) -> JobError {
    if !err.is_io_error() {
        return JobError::permanent("invalid_csv", err.to_string());
    }
    match err.into_kind() {
        csv::ErrorKind::Io(io) => read_error(io),
        other => JobError::permanent("invalid_csv", format!("{other:?}")),
    }
}

/// An error reading the input as a job error: a record past the limit
/// (from [`BoundedRecords`]) is permanent; anything else (a broken
/// connection to S3) is worth another attempt.
fn read_error(err: std::io::Error) -> JobError {
    match err.get_ref().and_then(|e| e.downcast_ref::<RecordTooLong>()) {
        Some(too_long) => JobError::permanent(CSV_RECORD_TOO_LONG, too_long.to_string()),
        None => JobError::retryable(codes::STORAGE, format!("reading the input failed: {err}")),
    }
}

/// The input's bytes as a blocking [`Read`](std::io::Read), fed chunk by
/// chunk from the async side through a bounded channel (a reading error
/// in its place among them); the channel closing is the end of the input.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                // A reading error reaches the parser where it happened in
                // the input, so an error earlier in the CSV still comes first.
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// A short, quoted excerpt of a cell or column name for an error message.
fn excerpt(text: &str) -> String {
    format!("{:?}", shorten(text, MAX_EXCERPT_BYTES))
}

/// A cell the report uses, as text trimmed of whitespace (Unicode's, as a
/// no-break space from a spreadsheet export); a cell that is not UTF-8 is
/// invalid CSV.
fn utf8_cell<'a>(cell: &'a [u8], column: &str, line: u64) -> Result<&'a str, JobError> {
    std::str::from_utf8(cell).map(str::trim).map_err(|_| {
        JobError::permanent(
            "invalid_csv",
            format!("line {line}, column {}: the cell is not UTF-8", excerpt(column)),
        )
    })
}

fn column_index(headers: &csv::StringRecord, name: &str) -> Result<usize, JobError> {
    headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
        let mut listed: Vec<String> = headers.iter().take(MAX_LISTED_COLUMNS).map(excerpt).collect();
        if headers.len() > MAX_LISTED_COLUMNS {
            listed.push(format!("and {} more", headers.len() - MAX_LISTED_COLUMNS));
        }
        JobError::permanent(
            "missing_column",
            format!(
                "the CSV has no column {} (columns: {})",
                excerpt(name),
                listed.join(", ")
            ),
        )
    })
}

/// Chunks of the input in flight between the reading and the parsing side.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Size of one chunk handed to the parser (and of the parser's buffer).
const CHUNK_BYTES: usize = 64 * 1024;

/// Streams the CSV and summarises it. Two sides, so the parsing (CPU) never
/// runs on the async runtime and overlaps with the reading (I/O): this task
/// reads the input (bounding records, counting bytes, reporting progress)
/// and hands chunks through a bounded channel to [`aggregate`] on a blocking
/// thread. Memory stays at a few chunks whatever the input's size. If the
/// run stops (an error, cancel, a lost lease), the channel closes and the
/// parser ends after the chunks already sent.
async fn summarise(
    ctx: &JobContext,
    reader: Pin<Box<dyn AsyncRead + Send>>,
    size: Option<u64>,
    group_by: &[String],
    values: &[String],
    limits: ReportLimits,
) -> Result<Summary, JobError> {
    use tokio::io::AsyncReadExt;
    let (chunks, received) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let rows = Arc::new(AtomicU64::new(0));
    let parser = {
        let (group_by, values, rows) = (group_by.to_vec(), values.to_vec(), rows.clone());
        tokio::task::spawn_blocking(move || {
            let input = ChunkReader {
                chunks: received,
                current: Bytes::new(),
            };
            aggregate(input, &group_by, &values, limits, &rows)
        })
    };
    let mut input = BoundedRecords::new(reader, limits.max_record_bytes);
    let mut read: u64 = 0;
    let mut reported_rows: u64 = 0;
    let pumped: Result<(), JobError> = async {
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
            read += chunk.len() as u64;
            if !chunk.is_empty() && chunks.send(Ok(chunk.freeze())).await.is_err() {
                return Ok(()); // the parser stopped: its answer says why
            }
            if let Some(err) = failed {
                // The parser reports it once it has parsed what came before.
                let _ = chunks.send(Err(err)).await;
                return Ok(());
            }
            let rows_now = rows.load(Ordering::Relaxed);
            if rows_now / ROWS_PER_PROGRESS > reported_rows / ROWS_PER_PROGRESS {
                reported_rows = rows_now;
                let percent = size.filter(|&s| s > 0).map_or(50, |s| (read * 98 / s).min(98) as u8);
                ctx.progress(percent, format!("read {rows_now} rows")).await?;
            }
        }
        Ok(())
    }
    .await;
    drop(chunks);
    // Progress failing (a cancel, the deadline) stops the run first;
    // otherwise the parser's answer, reading errors included, in file order.
    pumped?;
    match parser.await {
        Ok(parsed) => parsed,
        // A panic is a crash, as a job handler's own would be.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(JobError::permanent("internal", format!("the CSV parser failed: {err}"))),
    }
}

/// Summarises the CSV `input` (blocking: runs on its own thread); `rows`
/// follows the rows read, for progress.
fn aggregate(
    input: impl std::io::Read,
    group_by: &[String],
    values: &[String],
    limits: ReportLimits,
    rows_read: &AtomicU64,
) -> Result<Summary, JobError> {
    // Byte records, and only the cells the report uses are trimmed and
    // checked as UTF-8: `Trim::All` would copy every record, and a string
    // record validates every cell.
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .buffer_capacity(CHUNK_BYTES)
        .from_reader(input);
    let headers = csv.headers().map_err(csv_error)?.clone();
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
    let mut key: Vec<u8> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut rows: u64 = 0;
    while csv.read_byte_record(&mut record).map_err(csv_error)? {
        rows += 1;
        let line = || record.position().map(|p| p.line()).unwrap_or(rows + 1);
        key.clear();
        for (&i, name) in group_idx.iter().zip(group_by) {
            let cell = utf8_cell(record.get(i).unwrap_or(b""), name, line())?;
            key.extend_from_slice(&(cell.len() as u64).to_le_bytes());
            key.extend_from_slice(cell.as_bytes());
        }
        let group = match index.get(key.as_slice()) {
            Some(&group) => group,
            None if found.len() >= limits.max_groups => {
                return Err(JobError::permanent(
                    TOO_MANY_GROUPS,
                    format!(
                        "line {}: the report has more than {} groups (MAX_REPORT_GROUPS)",
                        line(),
                        limits.max_groups
                    ),
                ));
            }
            None => {
                let cells = group_idx
                    .iter()
                    .zip(group_by)
                    .map(|(&i, name)| utf8_cell(record.get(i).unwrap_or(b""), name, line()).map(str::to_owned))
                    .collect::<Result<Vec<String>, JobError>>()?;
                found.push((cells, 0, vec![ColumnStats::default(); value_idx.len()]));
                index.insert(key.clone(), found.len() - 1);
                found.len() - 1
            }
        };
        let entry = &mut found[group];
        entry.1 += 1;
        for (stats, (&i, name)) in entry.2.iter_mut().zip(value_idx.iter().zip(values)) {
            let cell = utf8_cell(record.get(i).unwrap_or(b""), name, line())?;
            if cell.is_empty() {
                continue;
            }
            let value: f64 = cell.parse().map_err(|_| {
                JobError::permanent(
                    "invalid_number",
                    format!(
                        "line {}, column {}: {} is not a number",
                        line(),
                        excerpt(name),
                        excerpt(cell)
                    ),
                )
            })?;
            if !value.is_finite() {
                return Err(JobError::permanent(
                    "invalid_number",
                    format!(
                        "line {}, column {}: {} is not a finite number",
                        line(),
                        excerpt(name),
                        excerpt(cell)
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

fn summary_csv(summary: &Summary) -> Result<Vec<u8>, JobError> {
    let internal = |e: csv::Error| JobError::permanent("internal", e.to_string());
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = summary.group_by.clone();
    header.push("rows".into());
    for value in &summary.values {
        for stat in ["count", "sum", "min", "max", "mean"] {
            header.push(format!("{value}_{stat}"));
        }
    }
    writer.write_record(&header).map_err(internal)?;
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
        writer.write_record(&row).map_err(internal)?;
    }
    writer
        .into_inner()
        .map_err(|e| JobError::permanent("internal", e.to_string()))
}

#[cfg(test)]
mod tests {
    // Through `JobHandler`, from JSON, as submit and the worker call it.
    use bytes::Bytes;
    use serde_json::{json, Value};

    use super::{BoundedRecords, ReportJob, ReportLimits, ROWS_PER_PROGRESS};
    use crate::job_types::testing::{harness, input_key};
    use crate::job_types::JobHandler;
    use crate::ports::ObjectStore;
    use crate::record::codes;

    /// A report job with the default limits.
    fn report() -> ReportJob {
        report_with(&[])
    }

    /// A report job with the limits of a configuration with `overrides`.
    fn report_with(overrides: &[(&str, &str)]) -> ReportJob {
        ReportJob::new(ReportLimits::from_config(&crate::testing::config(overrides)))
    }

    fn summary_of(h: &crate::job_types::testing::Harness) -> Value {
        let key = h.ctx.result_key("summary.json");
        serde_json::from_slice(&h.objects.object(&key).expect("summary.json written").0).unwrap()
    }

    #[test]
    fn validation_names_the_bad_fields() {
        let job = report();
        assert!(job
            .validate(&json!({"source": {"csv": "a,b\n1,2"}, "group_by": ["a"], "values": ["b"]}))
            .is_ok());
        let errors = job
            .validate(&json!({"source": {"key": "elsewhere.csv", "csv": "x"}, "group_by": [], "values": ["b"]}))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["input.source", "input.group_by"]);
        assert!(job
            .validate(&json!({"source": {"key": "../x"}, "group_by": ["a"], "values": ["b"]}))
            .is_err());
        let long_name = "c".repeat(257);
        let errors = job
            .validate(&json!({"source": {"csv": "a,b\n1,2"}, "group_by": ["a"], "values": [long_name]}))
            .unwrap_err();
        assert_eq!(errors[0].field, "input.values");
        assert!(job.validate(&json!({"group_by": ["a"], "values": ["b"]})).is_err());
        assert!(job.validate(&json!("report please")).is_err());
    }

    #[tokio::test]
    async fn summarises_groups_from_an_s3_object() {
        let csv = "region,product,amount,qty\n\
                   eu,a,10.5,1\n\
                   us,a,3,2\n\
                   eu,b,-2,\n\
                   eu,a,1.5,4\n";
        let input =
            json!({"source": {"key": input_key("sales.csv")}, "group_by": ["region"], "values": ["amount", "qty"]});
        let h = harness(input.clone(), None).await;
        h.objects
            .put(&input_key("sales.csv"), Bytes::from(csv), "text/csv")
            .await
            .unwrap();
        let results = report().run(&h.ctx, &input).await.unwrap();
        assert_eq!(
            results.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["summary.json", "summary.csv"]
        );

        let summary = summary_of(&h);
        assert_eq!(summary["rows"], 4);
        let eu = &summary["groups"][0];
        assert_eq!(eu["key"]["region"], "eu");
        assert_eq!(eu["rows"], 3);
        assert_eq!(eu["stats"]["amount"]["sum"], 10.0);
        assert_eq!(eu["stats"]["amount"]["min"], -2.0);
        assert_eq!(eu["stats"]["amount"]["max"], 10.5);
        assert_eq!(eu["stats"]["qty"]["count"], 2, "blank cells are skipped");
        assert_eq!(eu["stats"]["qty"]["mean"], 2.5);
        assert_eq!(summary["groups"][1]["key"]["region"], "us");

        let csv_key = h.ctx.result_key("summary.csv");
        let csv_out = String::from_utf8(h.objects.object(&csv_key).unwrap().0.to_vec()).unwrap();
        let mut lines = csv_out.lines();
        assert_eq!(
            lines.next(),
            Some("region,rows,amount_count,amount_sum,amount_min,amount_max,amount_mean,qty_count,qty_sum,qty_min,qty_max,qty_mean")
        );
        assert_eq!(lines.next(), Some("eu,3,3,10,-2,10.5,3.3333333333333335,2,5,1,4,2.5"));
    }

    #[tokio::test]
    async fn cells_are_trimmed_and_only_the_cells_used_must_be_utf8() {
        let key = input_key("mixed.csv");
        let input = json!({"source": {"key": key}, "group_by": ["g", "h"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        // Column `note` is not used: its Latin-1 byte does not matter. Group
        // cells differing only by surrounding whitespace (a no-break space
        // included, as spreadsheets export it) are one group, and a
        // key of two cells is not confused with another split differently.
        let csv = b" g , h ,v,note\n x , y ,1,caf\xe9\nx,y\xc2\xa0, 2\xc2\xa0,\nxy,,4,\nx,y z,8,\n".to_vec();
        h.objects.put(&key, Bytes::from(csv), "text/csv").await.unwrap();
        report().run(&h.ctx, &input).await.unwrap();
        let summary = summary_of(&h);
        assert_eq!(summary["rows"], 4);
        let groups: Vec<(String, String, f64)> = summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["key"]["g"].as_str().unwrap().to_owned(),
                    g["key"]["h"].as_str().unwrap().to_owned(),
                    g["stats"]["v"]["sum"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            groups,
            [
                ("x".to_owned(), "y".to_owned(), 3.0),
                ("x".to_owned(), "y z".to_owned(), 8.0),
                ("xy".to_owned(), "".to_owned(), 4.0)
            ]
        );

        // A used cell that is not UTF-8 fails with its place.
        let h = harness(input.clone(), None).await;
        let csv = b"g,h,v\nx,y,1\nx,\xff,2\n".to_vec();
        h.objects.put(&key, Bytes::from(csv), "text/csv").await.unwrap();
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "invalid_csv");
        assert!(
            err.message.contains("line 3") && err.message.contains("\"h\""),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn bad_numbers_and_missing_columns_fail_permanently_with_the_place() {
        let input = json!({"source": {"csv": "g,v\nx,1\nx,abc\n"}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "invalid_number");
        assert!(!err.retryable);
        assert!(err.message.contains("line 3"), "{}", err.message);

        let input = json!({"source": {"csv": "g,v\nx,1\n"}, "group_by": ["nope"], "values": ["v"]});
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "missing_column");
    }

    #[tokio::test]
    async fn a_missing_input_object_is_a_permanent_error() {
        let input = json!({"source": {"key": input_key("none.csv")}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, codes::INPUT_NOT_FOUND);
    }

    #[tokio::test]
    async fn reports_progress_while_reading_large_files() {
        let mut csv = String::from("g,v\n");
        for i in 0..(ROWS_PER_PROGRESS * 3) {
            csv.push_str(&format!("g{},{}\n", i % 7, i));
        }
        let input = json!({"source": {"csv": csv}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        report().run(&h.ctx, &input).await.unwrap();
        let summary = summary_of(&h);
        assert_eq!(summary["rows"], ROWS_PER_PROGRESS * 3);
        assert_eq!(summary["groups"].as_array().unwrap().len(), 7);
        let job = crate::ports::JobStore::get(h.store.as_ref(), h.ctx.job_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.progress, 99, "last progress before results");
    }

    #[tokio::test]
    async fn a_record_longer_than_the_cap_fails_before_the_reader_buffers_it() {
        // The CSV reader sees the long line only through the bound: it fails
        // having read little more than the cap, not the whole line.
        let cap = 1000;
        let h = harness(json!({}), None).await;
        let long_cell = "x".repeat(200_000);
        for (what, csv, line) in [
            ("record", format!("g,v\na,1\n{long_cell},2\nb,3\n"), 3),
            ("header", format!("g,v,{long_cell}\na,1\n"), 1),
            // A quoted field's line breaks do not end its record.
            ("quoted record", format!("g,v\n\"{}\",1\n", "ab\n".repeat(1000)), 2),
        ] {
            let input = json!({"source": {"key": input_key("long.csv")}, "group_by": ["g"], "values": ["v"]});
            h.objects
                .put(&input_key("long.csv"), Bytes::from(csv), "text/csv")
                .await
                .unwrap();
            let err = report_with(&[("MAX_CSV_RECORD_BYTES", "1000")])
                .run(&h.ctx, &input)
                .await
                .unwrap_err();
            assert_eq!(
                (err.code.as_str(), err.retryable),
                ("csv_record_too_long", false),
                "{what}"
            );
            assert!(err.message.contains(&format!("line {line}")), "{what}: {}", err.message);
            assert!(err.message.contains(&cap.to_string()), "{what}: {}", err.message);
        }

        // Records at the cap, quoted line breaks, doubled quotes and a stray
        // quote inside an unquoted field all pass.
        let at_cap = "y".repeat(cap - 2);
        let csv = format!("g,v\n{at_cap},1\n\"a\nb\",2\n\"say \"\"hi\"\"\",3\n5\" pipe,4\r\nz,5\n");
        let input = json!({"source": {"csv": csv}, "group_by": ["g"], "values": ["v"]});
        report_with(&[("MAX_CSV_RECORD_BYTES", "1000")])
            .run(&h.ctx, &input)
            .await
            .unwrap();
        let summary = summary_of(&h);
        assert_eq!(summary["rows"], 5);
    }

    #[test]
    fn following_in_bulk_agrees_with_following_byte_by_byte() {
        // Random text over the bytes that matter, fed in random chunks: the
        // bulk scan must end in the same state, or fail at the same record,
        // as one `step` per byte.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ab,\"\n\r ";
        for case in 0..2_000 {
            let len = (next() % 300) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let cap = 1 + (next() % 40) as usize;
            let mut reference = BoundedRecords::new((), cap);
            let expected = text.iter().try_for_each(|&b| reference.step(b));
            let mut bulk = BoundedRecords::new((), cap);
            let mut outcome = Ok(());
            let mut rest = text.as_slice();
            while !rest.is_empty() && outcome.is_ok() {
                let take = 1 + (next() % 64) as usize;
                let (chunk, tail) = rest.split_at(take.min(rest.len()));
                outcome = bulk.follow(chunk);
                rest = tail;
            }
            assert_eq!(
                outcome.map_err(|(_, too_long)| too_long),
                expected,
                "case {case}: {:?}",
                String::from_utf8_lossy(&text)
            );
            if expected.is_ok() {
                assert_eq!(
                    (bulk.scan, bulk.record_bytes, bulk.line, bulk.record_line),
                    (
                        reference.scan,
                        reference.record_bytes,
                        reference.line,
                        reference.record_line
                    ),
                    "case {case}: {:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[tokio::test]
    async fn errors_come_in_the_order_of_the_file() {
        // A bad number on line 3, then a record past the cap: the bad number
        // is reported, although the reader meets the long record first.
        let h = harness(json!({}), None).await;
        let key = input_key("ordered.csv");
        let csv = format!("g,v\nx,1\nx,abc\n{},2\n", "y".repeat(5000));
        h.objects.put(&key, Bytes::from(csv), "text/csv").await.unwrap();
        let input = json!({"source": {"key": key}, "group_by": ["g"], "values": ["v"]});
        let err = report_with(&[("MAX_CSV_RECORD_BYTES", "1000")])
            .run(&h.ctx, &input)
            .await
            .unwrap_err();
        assert_eq!(err.code, "invalid_number", "{}", err.message);
        assert!(err.message.contains("line 3"), "{}", err.message);
    }

    #[tokio::test]
    async fn the_record_bound_stops_reading_at_the_cap() {
        use tokio::io::AsyncReadExt;
        let endless = std::io::Cursor::new(vec![b'x'; 10 << 20]);
        let mut bounded = BoundedRecords::new(endless, 4096);
        let mut read = Vec::new();
        let err = bounded.read_to_end(&mut read).await.unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(read.len() <= 4096, "{} bytes passed the bound", read.len());
        assert!(bounded.read_to_end(&mut read).await.is_err(), "the failure sticks");
    }

    #[tokio::test]
    async fn more_groups_than_the_cap_fail_at_the_first_group_past_it() {
        let input =
            json!({"source": {"csv": "g,v\na,1\nb,2\na,3\nc,4\nd,5\ne,6\n"}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = report_with(&[("MAX_REPORT_GROUPS", "3")])
            .run(&h.ctx, &input)
            .await
            .unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("too_many_groups", false));
        assert!(err.message.contains("line 6"), "{}", err.message);
        assert!(err.message.contains("more than 3 groups"), "{}", err.message);

        // At the cap is fine.
        let input = json!({"source": {"csv": "g,v\na,1\nb,2\na,3\nc,4\n"}, "group_by": ["g"], "values": ["v"]});
        report_with(&[("MAX_REPORT_GROUPS", "3")])
            .run(&h.ctx, &input)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn error_messages_quote_only_excerpts_of_cells_and_columns() {
        let huge = "9x".repeat(100_000);
        let input = json!({"source": {"csv": format!("g,v\na,{huge}\n")}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "invalid_number");
        assert!(err.message.len() < 200, "{}", err.message);
        assert!(err.message.contains("line 2"), "{}", err.message);

        let many_long_columns: Vec<String> = (0..100).map(|i| format!("{i}{}", "c".repeat(5_000))).collect();
        let csv = format!("{}\n", many_long_columns.join(","));
        let input = json!({"source": {"csv": csv}, "group_by": ["nope"], "values": ["v"]});
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "missing_column");
        assert!(err.message.contains("and 92 more"), "{}", err.message);
        assert!(
            !err.message.ends_with(crate::record::TRUNCATION_MARKER),
            "{}",
            err.message
        );
    }
}
