//! `activity-report`: an app on longrun with a job type of its own.
//!
//! The job reads a large uploaded CSV of activity (one record per order,
//! visit, payment, …), keeps one year of it, and writes a one-page PDF
//! report — totals, a bar chart of the monthly totals, a table — and the
//! months as JSON. It streams the object (one record in memory at a time),
//! reports progress by bytes read, checkpoints the months so far so a
//! continuation or a retry resumes where the last run stopped, and stops
//! at a cancel or the invocation's deadline.
//!
//! Everything longrun-specific is here: the input and its checks, `run`,
//! and [`registry`], which the app's two binaries (`src/main.rs` on Lambda,
//! `src/bin/local.rs` locally) hand to longrun.

pub mod aggregate;
pub mod chart;
pub mod pdf;
pub mod pdf_backend;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use longrun_core::api::FieldError;
use longrun_core::job_types::{check_input_key, field_error, JobContext, JobResultExt, Registry, TypedJob};
use longrun_core::record::{codes, JobError, ResultObject};
use longrun_core::Config;
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

use crate::aggregate::{aggregate, Activity, Columns};

/// The job type's name, as callers submit it.
pub const JOB_TYPE: &str = "activity-report";

/// How often the job reports progress and saves a checkpoint.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// longrun's own job types and this app's: what submit validates and the
/// workers run. Submit and the workers call it with their configuration.
pub fn registry(config: &Config) -> Registry {
    let mut registry = longrun_jobs::standard(config);
    registry.register(Arc::new(ActivityReport));
    registry
}

/// The input: `{"source": {"key": "inputs/…"}, "year": 2025,
/// "date_column": "date", "amount_column": "amount", "title": "…"}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    /// The uploaded CSV (`POST /uploads`).
    pub source: Source,
    /// The year to report.
    pub year: u16,
    /// The column holding each record's date, `YYYY-MM…`.
    #[serde(default = "default_date_column")]
    pub date_column: String,
    /// The column holding each record's amount.
    #[serde(default = "default_amount_column")]
    pub amount_column: String,
    /// The report's heading.
    #[serde(default)]
    pub title: Option<String>,
}

/// Where the input is.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// An object key under the caller's `inputs/` prefix.
    pub key: String,
}

fn default_date_column() -> String {
    "date".into()
}

fn default_amount_column() -> String {
    "amount".into()
}

/// The `activity-report` job type.
pub struct ActivityReport;

#[async_trait]
impl TypedJob for ActivityReport {
    type Input = ActivityInput;
    /// The months so far and how many records they cover.
    type Checkpoint = Activity;

    fn job_type(&self) -> &'static str {
        JOB_TYPE
    }

    fn check(&self, input: &ActivityInput) -> Result<(), Vec<FieldError>> {
        let mut errors: Vec<FieldError> = check_input_key("input.source.key", &input.source.key)
            .err()
            .into_iter()
            .collect();
        if !(1970..=9999).contains(&input.year) {
            errors.push(field_error("input.year", "must be between 1970 and 9999"));
        }
        for (field, name) in [
            ("input.date_column", &input.date_column),
            ("input.amount_column", &input.amount_column),
        ] {
            if name.trim().is_empty() || name.len() > 128 {
                errors.push(field_error(field, "must be a column name of 1 to 128 bytes"));
            }
        }
        if input.title.as_ref().is_some_and(|t| t.len() > 200) {
            errors.push(field_error("input.title", "must be at most 200 bytes"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn input_keys(&self, input: &ActivityInput) -> Vec<(&'static str, String)> {
        vec![("input.source.key", input.source.key.clone())]
    }

    async fn run(
        &self,
        ctx: &JobContext,
        input: ActivityInput,
        resume: Option<Activity>,
    ) -> Result<Vec<ResultObject>, JobError> {
        let object = ctx.open_input(&input.source.key).await?;
        let read = Arc::new(AtomicU64::new(0));
        // Raised when this run must stop (a cancel, a lost lease), and when
        // `run` is dropped: the worker drops a handler at its deadline, and
        // the reading thread must not go on streaming the object after it.
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let deadline = std::time::Instant::now() + ctx.remaining();
        let start = resume.unwrap_or_default();
        let (progress, mut latest) = watch::channel(start.clone());
        let body = tokio_util::io::SyncIoBridge::new(Counted {
            inner: object.body,
            read: read.clone(),
        });
        let (year, date, amount) = (input.year, input.date_column.clone(), input.amount_column.clone());
        let reading = {
            let stop = stop.0.clone();
            tokio::task::spawn_blocking(move || {
                let columns = Columns {
                    date: &date,
                    amount: &amount,
                    year,
                };
                let mut activity = start;
                let mut calls = 0u64;
                aggregate(body, &columns, &mut activity, |so_far| {
                    calls += 1;
                    if calls.is_multiple_of(1024) {
                        progress.send_if_modified(|shown| {
                            let changed = shown.records != so_far.records;
                            if changed {
                                shown.clone_from(so_far);
                            }
                            changed
                        });
                        if std::time::Instant::now() >= deadline {
                            return false;
                        }
                    }
                    !stop.load(Ordering::Relaxed)
                })?;
                Ok::<_, JobError>(activity)
            })
        };
        // Progress and checkpoints beside the reading, never inside it; a
        // checkpoint only when the reading moved on, so a stalled or still
        // skipping run saves nothing (and the worker's no-progress rule
        // still sees it stall).
        tokio::pin!(reading);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let activity = loop {
            tokio::select! {
                done = &mut reading => break match done {
                    Ok(read) => read?,
                    // A panic is a crash, as a handler's own would be.
                    Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                    Err(err) => return Err(JobError::permanent(codes::INTERNAL, err.to_string())),
                },
                _ = tick.tick() => {
                    let written = if latest.has_changed().unwrap_or(false) {
                        let percent = object.size.filter(|&s| s > 0).map_or(0, |size| read.load(Ordering::Relaxed) * 95 / size);
                        let so_far = latest.borrow_and_update().clone();
                        let message = format!("{} records read", so_far.records);
                        ctx.checkpoint((percent as u8).min(95), message, &so_far).await
                    } else {
                        ctx.ensure_running()
                    };
                    if let Err(stopping) = written {
                        stop.0.store(true, Ordering::Relaxed);
                        let _ = reading.await;
                        return Err(stopping);
                    }
                }
            }
        };
        ctx.progress(97, "drawing the report").await?;
        let title = input.title.unwrap_or_else(|| format!("Activity in {year}"));
        let report = pdf::render(&title, year, &activity);
        let months = serde_json::to_vec_pretty(&activity).permanent(codes::INTERNAL)?;
        let pdf_name = format!("activity-{year}.pdf");
        let (pdf, json) = tokio::try_join!(
            ctx.put_result(&pdf_name, Bytes::from(report), "application/pdf"),
            ctx.put_result("months.json", Bytes::from(months), "application/json"),
        )?;
        Ok(vec![pdf, json])
    }
}

/// Raises the reading thread's stop flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The object's body, counting the bytes read (for progress).
struct Counted {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        let added = (buf.filled().len() - before) as u64;
        self.read.fetch_add(added, Ordering::Relaxed);
        polled
    }
}

/// The guide `docs/job-types.md`, whose code blocks run as this crate's
/// doctests, so the guide cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/job-types.md")]
pub struct Guide;
