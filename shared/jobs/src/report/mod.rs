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

use std::collections::BTreeMap;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use longrun_core::api::FieldError;
use longrun_core::config::{Config, ConfigError};
use longrun_core::job_types::{check_input_key, field_error};
use longrun_core::job_types::{JobContext, JobResultExt, TypedJob};
use longrun_core::record::{codes, JobError, ResultObject};

mod aggregate;
mod checkpoint;
mod csv_records;
mod reading;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod tests;

use self::aggregate::{summary_csv, Resume, Spec};
pub use self::checkpoint::ReportCheckpoint;
use self::reading::summarise;

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
/// Error code: the report has more than `MAX_REPORT_GROUPS` groups, or its
/// groups need more than `MAX_REPORT_GROUP_BYTES` of memory (permanent).
const TOO_MANY_GROUPS: &str = "too_many_groups";

/// How much of a CSV a report holds in memory at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportLimits {
    /// How often a running report saves its checkpoint
    /// (`REPORT_CHECKPOINT_SECONDS`; 0: only just before its stop time).
    pub checkpoint_every: std::time::Duration,
    /// The longest header or record read, in bytes (`MAX_CSV_RECORD_BYTES`).
    pub max_record_bytes: usize,
    /// The most distinct groups summarised (`MAX_REPORT_GROUPS`).
    pub max_groups: usize,
    /// The most memory the groups may take, by [`group_bytes`](aggregate::group_bytes)'s
    /// estimate (`MAX_REPORT_GROUP_BYTES`): long keys reach it before the
    /// count of groups does.
    pub max_group_bytes: usize,
}

impl ReportLimits {
    /// The limits the environment sets: `REPORT_CHECKPOINT_SECONDS`
    /// (default 30), `MAX_CSV_RECORD_BYTES` (default 1
    /// MiB), `MAX_REPORT_GROUPS` (default 100,000) and
    /// `MAX_REPORT_GROUP_BYTES` (default 64 MiB: a few reports at once fit
    /// the fast worker's 512 MB), each at least 1.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(ReportLimits {
            checkpoint_every: std::time::Duration::from_secs(config.settings.number("REPORT_CHECKPOINT_SECONDS", 30)?),
            max_record_bytes: config.settings.positive("MAX_CSV_RECORD_BYTES", 1024 * 1024)?,
            max_groups: config.settings.positive("MAX_REPORT_GROUPS", 100_000)?,
            max_group_bytes: config.settings.positive("MAX_REPORT_GROUP_BYTES", 64 * 1024 * 1024)?,
        })
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// The CSV: exactly one of `key` or `csv`.
    source: Source,
    /// The columns to group rows by.
    group_by: Vec<String>,
    /// The numeric columns to summarise per group.
    values: Vec<String>,
}

/// Where a report's CSV is: exactly one of the two.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Source {
    /// An uploaded CSV's key under the caller's `inputs/` prefix.
    key: Option<String>,
    /// The CSV itself, header line first.
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
    type Checkpoint = ReportCheckpoint;

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

    async fn run(
        &self,
        ctx: &JobContext,
        input: ReportInput,
        resume: Option<ReportCheckpoint>,
    ) -> Result<Vec<ResultObject>, JobError> {
        let resume = match resume {
            Some(at) => {
                // Groups take at most MAX_REPORT_GROUP_BYTES in memory; their
                // JSON is within a few times that.
                let most = 4 * self.limits.max_group_bytes as u64 + 1024 * 1024;
                let groups = checkpoint::saved_groups(ctx, &at, most).await?;
                tracing::info!(
                    offset = at.offset,
                    rows = at.rows,
                    "the report resumes from its checkpoint"
                );
                Some(Resume { at, groups })
            }
            None => None,
        };
        let offset = resume.as_ref().map_or(0, |r| r.at.offset);
        let read_before = resume.as_ref().and_then(|r| r.at.etag.clone());
        type Input = (Option<u64>, Option<String>, Pin<Box<dyn AsyncRead + Send>>);
        let (size, etag, reader): Input = match (&input.source.key, &input.source.csv) {
            (Some(key), _) => {
                // Resumed, only the version the first run read goes on.
                let object = ctx.open_input_from(key, offset, read_before.as_deref()).await?;
                (object.size, read_before.or(object.etag), object.body)
            }
            (None, Some(csv)) => {
                let bytes = Bytes::from(csv.clone());
                let rest = bytes.slice((offset as usize).min(bytes.len())..);
                (Some(rest.len() as u64), None, Box::pin(std::io::Cursor::new(rest)))
            }
            (None, None) => return Err(JobError::permanent(codes::INVALID_INPUT, "no source")),
        };
        let spec = Spec {
            group_by: input.group_by,
            values: input.values,
            limits: self.limits,
            etag,
        };
        let summary = summarise(ctx, reader, size, spec, resume).await?;
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
