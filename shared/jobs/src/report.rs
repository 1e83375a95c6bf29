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
//! `MAX_CSV_RECORD_BYTES` (its cells and the commas between them; quotes
//! around quoted cells and the line break ending it not counted) fails the
//! job (`csv_record_too_long`) as soon as the parser holds that much of it,
//! before it reads further; a report with more than `MAX_REPORT_GROUPS`
//! groups fails (`too_many_groups`) at the first group past the cap. Error
//! messages quote cells and column names only in short excerpts.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use longrun_core::api::FieldError;
use longrun_core::config::Config;
use longrun_core::job_types::{check_input_key, field_error};
use longrun_core::job_types::{JobContext, JobResultExt, TypedJob};
use longrun_core::record::{codes, shorten, JobError, ResultObject};

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
    /// Rows with a value in the column.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// `sum / count`.
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
    type Checkpoint = ();

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

    async fn run(&self, ctx: &JobContext, input: ReportInput, _: Option<()>) -> Result<Vec<ResultObject>, JobError> {
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
        let json = serde_json::to_vec_pretty(&summary).permanent(codes::INTERNAL)?;
        let csv = summary_csv(&summary)?;
        let (json_result, csv_result) = tokio::try_join!(
            ctx.put_result("summary.json", Bytes::from(json), "application/json"),
            ctx.put_result("summary.csv", Bytes::from(csv), "text/csv"),
        )?;
        Ok(vec![json_result, csv_result])
    }
}

/// Error code: the CSV is not readable as CSV (not UTF-8 where it must
/// be, or a record with another number of fields than the header).
const INVALID_CSV: &str = "invalid_csv";

/// Reads CSV records one at a time, with `csv_core`, straight from the
/// chunks of the input (no buffer between them and the parser), and holds
/// at most `max_record_bytes` of one record: a record is its cells' bytes
/// plus the commas between them (what the parser keeps of it; the quotes
/// around quoted cells and the line break ending it do not count), and one
/// running past the limit fails the read (`csv_record_too_long`) as soon
/// as the parser has that much of it, before it reads further. The syntax
/// is RFC 4180 as the `csv` crate reads it (`,`, `"` quoting with doubled
/// quotes, `\r`/`\n`/`\r\n` ending records, blank lines skipped, a UTF-8
/// byte order mark at the start dropped).
struct CsvRecords<C> {
    /// The input, in order; an error is the input failing at that point.
    chunks: C,
    /// What is left of the chunk being parsed.
    current: Bytes,
    /// Set once `chunks` has ended: the parser is then told so.
    input_ended: bool,
    parser: csv_core::Reader,
    max_record_bytes: usize,
    /// The current record's cells, one after the other.
    cells: Vec<u8>,
    /// Where each cell of the current record ends in `cells`.
    ends: Vec<usize>,
    /// How many cells the current record has.
    len: usize,
    /// The line the current record starts on (1 is the first; blank lines
    /// before a record count as its start, as the `csv` crate counts them).
    line: u64,
}

impl<C: Iterator<Item = std::io::Result<Bytes>>> CsvRecords<C> {
    fn new(chunks: C, max_record_bytes: usize) -> Self {
        CsvRecords {
            chunks,
            current: Bytes::new(),
            input_ended: false,
            parser: csv_core::Reader::new(),
            max_record_bytes,
            cells: vec![0; 1024.min(max_record_bytes + 1)],
            ends: vec![0; 64.min(max_record_bytes + 1)],
            len: 0,
            line: 1,
        }
    }

    /// Reads the next record: false at the end of the input. A reading
    /// error is retryable (`storage`); a record past the limit is not.
    fn next_record(&mut self) -> Result<bool, JobError> {
        use csv_core::ReadRecordResult;
        self.line = self.parser.line();
        self.len = 0;
        let (mut cell_bytes, mut cells) = (0, 0);
        loop {
            // An empty input tells the parser the input has ended, so it
            // gets one only then.
            while self.current.is_empty() && !self.input_ended {
                match self.chunks.next() {
                    Some(Ok(chunk)) => self.current = chunk,
                    Some(Err(err)) => return Err(read_error(err)),
                    None => self.input_ended = true,
                }
            }
            // Room for at most one byte (or cell) past the limit, so a
            // record is found too long having held no more than that.
            let room = self.max_record_bytes + 1 - (cell_bytes + cells).min(self.max_record_bytes + 1);
            let cells_end = self.cells.len().min(cell_bytes + room);
            let ends_end = self.ends.len().min(cells + room);
            let (result, read, written, ended) = self.parser.read_record(
                &self.current,
                &mut self.cells[cell_bytes..cells_end],
                &mut self.ends[cells..ends_end],
            );
            bytes::Buf::advance(&mut self.current, read);
            cell_bytes += written;
            cells += ended;
            // Mid-record, each cell ended so far was followed by a comma;
            // a whole record has one comma fewer than cells.
            let held = cell_bytes + cells - usize::from(result == ReadRecordResult::Record);
            if held > self.max_record_bytes {
                return Err(JobError::permanent(
                    CSV_RECORD_TOO_LONG,
                    format!(
                        "the CSV record starting at line {} is longer than {} bytes (MAX_CSV_RECORD_BYTES)",
                        self.line, self.max_record_bytes
                    ),
                ));
            }
            match result {
                ReadRecordResult::Record => {
                    self.len = cells;
                    return Ok(true);
                }
                ReadRecordResult::End => return Ok(false),
                ReadRecordResult::InputEmpty => {}
                // Full below the limit (above it is an error, just above).
                ReadRecordResult::OutputFull => grow(&mut self.cells, self.max_record_bytes + 1),
                ReadRecordResult::OutputEndsFull => grow(&mut self.ends, self.max_record_bytes + 1),
            }
        }
    }

    /// How many cells the current record has.
    fn len(&self) -> usize {
        self.len
    }

    /// Cell `i` of the current record (empty past its end).
    fn cell(&self, i: usize) -> &[u8] {
        if i >= self.len {
            return b"";
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.cells[start..self.ends[i]]
    }
}

/// Doubles `buffer`, to at most `max` items.
fn grow<T: Default + Clone>(buffer: &mut Vec<T>, max: usize) {
    let len = (buffer.len() * 2).clamp(1, max.max(1));
    buffer.resize(len, T::default());
}

/// An error reading the input as a job error: worth another attempt (a
/// broken connection to S3).
fn read_error(err: std::io::Error) -> JobError {
    JobError::retryable(codes::STORAGE, format!("reading the input failed: {err}"))
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
            INVALID_CSV,
            format!("line {line}, column {}: the cell is not UTF-8", excerpt(column)),
        )
    })
}

fn column_index(headers: &[String], name: &str) -> Result<usize, JobError> {
    headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
        let mut listed: Vec<String> = headers.iter().take(MAX_LISTED_COLUMNS).map(|h| excerpt(h)).collect();
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

/// How often a running report reports progress (written at most every
/// `PROGRESS_INTERVAL_MS`) and looks at whether the run must stop (a
/// cancel, a lost lease, the deadline).
const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(200);
/// Chunks of the input in flight between the reading and the parsing side.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Size of one chunk handed to the parser.
const CHUNK_BYTES: usize = 64 * 1024;

/// Streams the CSV and summarises it. Two sides, so the parsing (CPU) never
/// runs on the async runtime and overlaps with the reading (I/O): this task
/// reads the input and hands chunks through a bounded channel to
/// [`aggregate`] on a blocking thread, which parses them where they lie;
/// beside the reading, it reports progress ([`report_progress`]). Memory
/// stays at a few chunks and one record whatever the input's size. If the
/// run stops (an error, cancel, a lost lease), the channel closes and the
/// parser ends after the chunks already sent.
async fn summarise(
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
async fn report_progress(ctx: &JobContext, rows: &AtomicU64, read: &AtomicU64, size: Option<u64>) -> JobError {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_TICK, PROGRESS_TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_rows = 0;
    loop {
        ticks.tick().await;
        let rows_now = rows.load(Ordering::Relaxed);
        let reported = if rows_now == reported_rows {
            ctx.check()
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
fn aggregate(
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
                    None => {
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
fn encode_key<'a>(key: &mut Vec<u8>, cells: impl ExactSizeIterator<Item = &'a [u8]>) {
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

fn summary_csv(summary: &Summary) -> Result<Vec<u8>, JobError> {
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

#[cfg(test)]
mod tests {
    // Through `JobHandler`, from JSON, as submit and the worker call it.
    use bytes::Bytes;
    use serde_json::{json, Value};

    use super::{CsvRecords, ReportJob, ReportLimits, ROWS_PER_PROGRESS};
    use longrun_core::job_types::testing::{harness, input_key};
    use longrun_core::job_types::JobHandler;
    use longrun_core::ports::ObjectStore;
    use longrun_core::record::codes;

    /// A report job with the default limits.
    fn report() -> ReportJob {
        report_with(&[])
    }

    /// A report job with the limits of a configuration with `overrides`.
    fn report_with(overrides: &[(&str, &str)]) -> ReportJob {
        ReportJob::new(ReportLimits::from_config(&longrun_core::testing::config(overrides)))
    }

    fn summary_of(h: &longrun_core::job_types::testing::Harness) -> Value {
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
        let job = longrun_core::ports::JobStore::get(h.store.as_ref(), h.ctx.job_id())
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

    /// The chunks of `text`, cut at random lengths from 1 to 64 bytes.
    fn random_chunks(text: &[u8], next: &mut impl FnMut() -> u64) -> Vec<std::io::Result<Bytes>> {
        let mut chunks = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let take = (1 + (next() % 64) as usize).min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            chunks.push(Ok(Bytes::copy_from_slice(chunk)));
            rest = tail;
        }
        chunks
    }

    #[test]
    fn the_reader_reads_what_the_csv_crate_reads_and_bounds_records() {
        // Random text over the bytes that matter, fed in random chunks: the
        // records must be the `csv` crate's (cells and starting lines), up to
        // the first whose cells and commas are longer than the cap, which
        // must fail with its line.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ab,\"\n\r ";
        let mut failures = 0;
        for case in 0..3_000 {
            let len = (next() % 300) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let cap = 1 + (next() % 40) as usize;
            let mut reference = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(text.as_slice());
            let mut expected = Vec::new();
            let mut record = csv::ByteRecord::new();
            while reference.read_byte_record(&mut record).unwrap() {
                let cells: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
                let held = cells.iter().map(Vec::len).sum::<usize>() + cells.len() - 1;
                expected.push((record.position().unwrap().line(), cells, held));
            }
            let mut reader = CsvRecords::new(random_chunks(&text, &mut next).into_iter(), cap);
            for (line, cells, held) in &expected {
                let what = format!("case {case}, line {line}: {:?}", String::from_utf8_lossy(&text));
                match reader.next_record() {
                    Ok(true) => {
                        assert!(*held <= cap, "{what}: {held} bytes passed a cap of {cap}");
                        assert_eq!(reader.line, *line, "{what}");
                        let read: Vec<Vec<u8>> = (0..reader.len()).map(|i| reader.cell(i).to_vec()).collect();
                        assert_eq!(&read, cells, "{what}");
                    }
                    Ok(false) => panic!("{what}: ended early"),
                    Err(err) => {
                        assert!(
                            *held > cap,
                            "{what}: {held} bytes failed a cap of {cap}: {}",
                            err.message
                        );
                        assert_eq!(err.code, "csv_record_too_long", "{what}");
                        assert!(
                            err.message.contains(&format!("line {line} ")),
                            "{what}: {}",
                            err.message
                        );
                        failures += 1;
                        break;
                    }
                }
            }
            if expected.iter().all(|(_, _, held)| *held <= cap) {
                assert!(!reader.next_record().unwrap(), "case {case}: a record too many");
            }
        }
        assert!(failures > 100, "the cases must exercise the cap: {failures} failed");
    }

    #[test]
    fn the_record_bound_stops_reading_at_the_cap() {
        // An endless record in 64 KiB chunks: the reader fails having taken
        // only the chunks that hold the cap's bytes, and holds no more.
        let pulled = std::cell::Cell::new(0);
        let endless = std::iter::from_fn(|| {
            pulled.set(pulled.get() + 1);
            Some(Ok(Bytes::from(vec![b'x'; 64 * 1024])))
        });
        let cap = 200_000;
        let mut reader = CsvRecords::new(endless, cap);
        let err = reader.next_record().unwrap_err();
        assert_eq!(err.code, "csv_record_too_long");
        assert!(err.message.contains("line 1"), "{}", err.message);
        assert!(pulled.get() <= cap / (64 * 1024) + 1, "{} chunks pulled", pulled.get());
        assert!(reader.cells.len() <= cap + 1, "{} bytes held", reader.cells.len());

        // A reading error is retryable, after the records before it.
        let chunks = vec![
            Ok(Bytes::from_static(b"g,v\na,1\n")),
            Err(std::io::Error::other("connection reset")),
        ];
        let mut reader = CsvRecords::new(chunks.into_iter(), cap);
        assert!(reader.next_record().unwrap());
        assert!(reader.next_record().unwrap());
        assert_eq!(reader.cell(0), b"a");
        let err = reader.next_record().unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), (codes::STORAGE, true));
    }

    /// The error of a report grouping by `g` and summing `value` over an
    /// object holding `csv` (bytes, so not necessarily UTF-8).
    async fn failure_on_object(
        h: &longrun_core::job_types::testing::Harness,
        csv: &[u8],
        value: &str,
    ) -> longrun_core::record::JobError {
        let key = input_key("failing.csv");
        h.objects
            .put(&key, Bytes::from(csv.to_vec()), "text/csv")
            .await
            .unwrap();
        let input = json!({"source": {"key": key}, "group_by": ["g"], "values": [value]});
        report().run(&h.ctx, &input).await.unwrap_err()
    }

    #[tokio::test]
    async fn records_must_have_the_header_s_fields_and_the_header_must_be_utf8() {
        let input = json!({"source": {"csv": "g,v\nx,1\nx,2,3\n"}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), ("invalid_csv", false));
        assert!(
            err.message.contains("line 3") && err.message.contains("3 fields"),
            "{}",
            err.message
        );

        let err = failure_on_object(&h, b"g,caf\xe9\nx,1\n", "g").await;
        assert_eq!(err.code, "invalid_csv");
        assert!(err.message.contains("line 1"), "{}", err.message);

        // A byte order mark is not part of the first column's name.
        let input = json!({"source": {"csv": "\u{feff}g,v\nx,1\n"}, "group_by": ["g"], "values": ["v"]});
        report().run(&h.ctx, &input).await.unwrap();
        assert_eq!(summary_of(&h)["rows"], 1);
    }

    #[tokio::test]
    async fn whitespace_other_than_ascii_is_trimmed_and_checked_on_every_row() {
        // A group first seen plain, then with a no-break space or a vertical
        // tab around it, is the same group; a value padded with them is
        // still a number, and a blank of them is blank. A cell that is not
        // UTF-8 fails even when its group is already known.
        let csv = "g,v\nx,1\nx\u{a0},2\n\u{b}x,\u{a0}3\u{a0}\nx,\u{a0}\n";
        let input = json!({"source": {"csv": csv}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        report().run(&h.ctx, &input).await.unwrap();
        let summary = summary_of(&h);
        assert_eq!(summary["groups"].as_array().unwrap().len(), 1, "{summary}");
        assert_eq!(summary["groups"][0]["rows"], 4);
        assert_eq!(summary["groups"][0]["stats"]["v"]["sum"], 6.0);
        assert_eq!(summary["groups"][0]["stats"]["v"]["count"], 3);

        let err = failure_on_object(&h, b"g,v\nx,1\nx,1\xff\n", "v").await;
        assert_eq!(err.code, "invalid_csv");
        assert!(err.message.contains("line 3"), "{}", err.message);

        let input = json!({"source": {"csv": "g,v\nx,inf\n"}, "group_by": ["g"], "values": ["v"]});
        let err = report().run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "invalid_number");
        assert!(
            err.message.contains("\"inf\" is not a finite number"),
            "{}",
            err.message
        );
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

    /// An endless CSV: a header, then `a,1` rows for ever.
    struct EndlessCsv {
        header_sent: bool,
    }

    impl tokio::io::AsyncRead for EndlessCsv {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if !self.header_sent {
                buf.put_slice(b"g,v\n");
                self.header_sent = true;
            }
            while buf.remaining() >= 4 {
                buf.put_slice(b"a,1\n");
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_running_report_reports_progress_and_stops_when_cancelled() {
        use std::time::Duration;
        let h = harness(json!({}), None).await;
        let (group_by, values) = (["g".to_owned()], ["v".to_owned()]);
        let limits = ReportLimits::from_config(&longrun_core::testing::config(&[]));
        let endless = Box::pin(EndlessCsv { header_sent: false });
        let summarising = super::summarise(&h.ctx, endless, None, &group_by, &values, limits);
        tokio::pin!(summarising);
        let watched = tokio::time::timeout(Duration::from_secs(60), async {
            // Progress appears while the parser reads (no size: 50%).
            loop {
                tokio::select! {
                    _ = &mut summarising => panic!("an endless input cannot end"),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                let job = longrun_core::ports::JobStore::get(h.store.as_ref(), h.ctx.job_id())
                    .await
                    .unwrap()
                    .unwrap();
                if job.progress_message.as_deref().is_some_and(|m| m.starts_with("read ")) {
                    assert_eq!(job.progress, 50);
                    break;
                }
            }
            h.signal.cancel();
            (&mut summarising).await
        })
        .await
        .expect("progress is reported and a cancelled report stops");
        assert_eq!(watched.unwrap_err().code, codes::CANCELLED);
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
            !err.message.ends_with(longrun_core::record::TRUNCATION_MARKER),
            "{}",
            err.message
        );
    }
}
