//! `report`: a grouped summary of a CSV file.
//!
//! Input: `{"source": {"key": "inputs/…csv"} | {"csv": "…inline…"},
//! "group_by": ["col", …], "values": ["col", …]}`. The CSV is streamed
//! (memory grows with the number of groups, never with the file), and for
//! every group and value column it computes count, sum, min, max and mean
//! (blank cells are skipped; anything else that is not a number fails the
//! job with the line and column). Writes `summary.json` and `summary.csv`.

use std::collections::BTreeMap;
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
use crate::record::{codes, JobError, ResultObject};

/// Rows between two progress reports.
const ROWS_PER_PROGRESS: u64 = 2_000;
/// Most group-by and value columns a report may name.
const MAX_COLUMNS: usize = 32;

/// The `report` job type.
pub struct ReportJob;

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
        let summary = summarise(ctx, reader, size, &input.group_by, &input.values).await?;
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

/// Counts the bytes that pass through, for progress against the object size.
struct CountingReader<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let added = (buf.filled().len() - before) as u64;
        self.read.fetch_add(added, Ordering::Relaxed);
        poll
    }
}

fn column_index(headers: &csv_async::StringRecord, name: &str) -> Result<usize, JobError> {
    headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
        JobError::permanent(
            "missing_column",
            format!(
                "the CSV has no column {name:?} (columns: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

async fn summarise(
    ctx: &JobContext,
    reader: Pin<Box<dyn AsyncRead + Send>>,
    size: Option<u64>,
    group_by: &[String],
    values: &[String],
) -> Result<Summary, JobError> {
    let read = Arc::new(AtomicU64::new(0));
    let counting = CountingReader {
        inner: reader,
        read: read.clone(),
    };
    let mut csv = csv_async::AsyncReaderBuilder::new()
        .has_headers(true)
        .trim(csv_async::Trim::All)
        .create_reader(counting);
    let bad_csv = |e: csv_async::Error| JobError::permanent("invalid_csv", e.to_string());
    let headers = csv.headers().await.map_err(bad_csv)?.clone();
    let group_idx: Vec<usize> = group_by
        .iter()
        .map(|c| column_index(&headers, c))
        .collect::<Result<_, _>>()?;
    let value_idx: Vec<usize> = values
        .iter()
        .map(|c| column_index(&headers, c))
        .collect::<Result<_, _>>()?;

    let mut groups: BTreeMap<Vec<String>, (u64, Vec<ColumnStats>)> = BTreeMap::new();
    let mut record = csv_async::StringRecord::new();
    let mut rows: u64 = 0;
    while csv.read_record(&mut record).await.map_err(bad_csv)? {
        rows += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(rows + 1);
        let key: Vec<String> = group_idx
            .iter()
            .map(|&i| record.get(i).unwrap_or("").to_owned())
            .collect();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (0, vec![ColumnStats::default(); value_idx.len()]));
        entry.0 += 1;
        for (stats, (&i, name)) in entry.1.iter_mut().zip(value_idx.iter().zip(values)) {
            let cell = record.get(i).unwrap_or("");
            if cell.is_empty() {
                continue;
            }
            let value: f64 = cell.parse().map_err(|_| {
                JobError::permanent(
                    "invalid_number",
                    format!("line {line}, column {name:?}: {cell:?} is not a number"),
                )
            })?;
            if !value.is_finite() {
                return Err(JobError::permanent(
                    "invalid_number",
                    format!("line {line}, column {name:?}: {cell:?} is not a finite number"),
                ));
            }
            stats.add(value);
        }
        if rows.is_multiple_of(ROWS_PER_PROGRESS) {
            let done = read.load(Ordering::Relaxed);
            let percent = size.filter(|&s| s > 0).map_or(50, |s| (done * 98 / s).min(98) as u8);
            ctx.progress(percent, format!("read {rows} rows")).await?;
        }
    }

    let groups = groups
        .into_iter()
        .map(|(key, (group_rows, mut stats))| {
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

    use super::{ReportJob, ROWS_PER_PROGRESS};
    use crate::job_types::testing::harness;
    use crate::job_types::JobHandler;
    use crate::ports::ObjectStore;
    use crate::record::codes;

    fn summary_of(h: &crate::job_types::testing::Harness) -> Value {
        let key = format!("results/{}/summary.json", h.ctx.job_id());
        serde_json::from_slice(&h.objects.object(&key).expect("summary.json written").0).unwrap()
    }

    #[test]
    fn validation_names_the_bad_fields() {
        let job = ReportJob;
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
        let input = json!({"source": {"key": "inputs/sales.csv"}, "group_by": ["region"], "values": ["amount", "qty"]});
        let h = harness(input.clone(), None).await;
        h.objects
            .put("inputs/sales.csv", Bytes::from(csv), "text/csv")
            .await
            .unwrap();
        let results = ReportJob.run(&h.ctx, &input).await.unwrap();
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

        let csv_key = format!("results/{}/summary.csv", h.ctx.job_id());
        let csv_out = String::from_utf8(h.objects.object(&csv_key).unwrap().0.to_vec()).unwrap();
        let mut lines = csv_out.lines();
        assert_eq!(
            lines.next(),
            Some("region,rows,amount_count,amount_sum,amount_min,amount_max,amount_mean,qty_count,qty_sum,qty_min,qty_max,qty_mean")
        );
        assert_eq!(lines.next(), Some("eu,3,3,10,-2,10.5,3.3333333333333335,2,5,1,4,2.5"));
    }

    #[tokio::test]
    async fn bad_numbers_and_missing_columns_fail_permanently_with_the_place() {
        let input = json!({"source": {"csv": "g,v\nx,1\nx,abc\n"}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = ReportJob.run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "invalid_number");
        assert!(!err.retryable);
        assert!(err.message.contains("line 3"), "{}", err.message);

        let input = json!({"source": {"csv": "g,v\nx,1\n"}, "group_by": ["nope"], "values": ["v"]});
        let err = ReportJob.run(&h.ctx, &input).await.unwrap_err();
        assert_eq!(err.code, "missing_column");
    }

    #[tokio::test]
    async fn a_missing_input_object_is_a_permanent_error() {
        let input = json!({"source": {"key": "inputs/none.csv"}, "group_by": ["g"], "values": ["v"]});
        let h = harness(input.clone(), None).await;
        let err = ReportJob.run(&h.ctx, &input).await.unwrap_err();
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
        ReportJob.run(&h.ctx, &input).await.unwrap();
        let summary = summary_of(&h);
        assert_eq!(summary["rows"], ROWS_PER_PROGRESS * 3);
        assert_eq!(summary["groups"].as_array().unwrap().len(), 7);
        let job = crate::ports::JobStore::get(h.store.as_ref(), h.ctx.job_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.progress, 99, "last progress before results");
    }
}
