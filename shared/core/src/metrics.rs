//! Job metrics as CloudWatch Embedded Metric Format lines on stdout, through
//! the `metrics` facade and the `metrics_cloudwatch_embedded` recorder.
//!
//! Each event is counted twice: once with no dimensions (the stack-wide
//! series the dashboard and the failure-rate alarm use) and once by
//! `JobType` and `Queue` (or by `Reason` for refused submits). Names:
//! `JobsSubmitted`, `JobsStarted`, `JobsSucceeded`, `JobsFailed`,
//! `JobsCancelled`, `JobsDeadLettered`, `Retries`, `Continuations`,
//! `Takeovers`, `SubmitsRejected` (by HTTP status), and the distributions
//! `QueueWaitMs` (submit, or the end of a delay, to the first claim) and
//! `RunMs` (one run, claim to end). The namespace is `METRICS_NAMESPACE`.
//!
//! The Lambda bootstrap writes what was recorded after every invocation
//! ([`flush`]); the local runtime every second. Without [`init`] (unit
//! tests) the facade records nothing.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_cloudwatch_embedded::Collector;

use crate::record::JobRecord;

static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();

/// Installs the EMF recorder for the process (once; later calls do
/// nothing): `auto_flush` writes what was recorded that often (the local
/// runtime), otherwise [`flush`] does (after each Lambda invocation).
pub fn init(namespace: &str, auto_flush: Option<Duration>) {
    COLLECTOR.get_or_init(|| {
        let mut builder = metrics_cloudwatch_embedded::Builder::new().cloudwatch_namespace(namespace.to_owned());
        if let Some(interval) = auto_flush {
            builder = builder.with_auto_flush_interval(interval);
        }
        match builder.init() {
            Ok(collector) => Some(collector),
            Err(err) => {
                tracing::warn!(error = %err, "metrics recorder not installed; no EMF metrics");
                None
            }
        }
    });
}

/// Writes what was recorded since the last flush as EMF lines on stdout.
pub fn flush() {
    if let Some(Some(collector)) = COLLECTOR.get() {
        if let Err(err) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %err, "could not write the metrics");
        }
    }
}

/// One more of `name`, stack-wide and for the job's type and queue.
fn count(name: &'static str, job: &JobRecord) {
    metrics::counter!(name).increment(1);
    metrics::counter!(name, "JobType" => job.job_type.clone(), "Queue" => job.queue.clone()).increment(1);
}

/// A job was accepted.
pub fn submitted(job: &JobRecord) {
    count("JobsSubmitted", job);
}

/// A submit (or upload, or any API call) was refused with `status`.
pub fn rejected(status: u16) {
    metrics::counter!("SubmitsRejected").increment(1);
    metrics::counter!("SubmitsRejected", "Reason" => status.to_string()).increment(1);
}

/// A worker claimed `job` at `now_ms` (the record as claimed): a start, and
/// on its first start the time it waited in the queue.
pub fn started(job: &JobRecord, now_ms: i64) {
    count("JobsStarted", job);
    if job.started_at == Some(now_ms) {
        let waited = now_ms - job.run_at.unwrap_or(job.created_at).max(job.created_at);
        metrics::histogram!("QueueWaitMs").record(waited.max(0) as f64);
        metrics::histogram!("QueueWaitMs", "Queue" => job.queue.clone()).record(waited.max(0) as f64);
    }
}

/// A claim took `job` over from a run whose lease expired.
pub fn taken_over(job: &JobRecord) {
    count("Takeovers", job);
}

/// A run of `job` ended (its end written) after `run_ms`.
pub fn run_ended(job: &JobRecord, run_ms: i64) {
    metrics::histogram!("RunMs").record(run_ms.max(0) as f64);
    metrics::histogram!("RunMs", "JobType" => job.job_type.clone()).record(run_ms.max(0) as f64);
}

/// `job` reached the terminal `status`, any way (a run, a cancel, a dead
/// letter): the stores call this with every terminal write, so each end
/// counts once.
pub fn ended(job: &JobRecord, status: crate::JobStatus) {
    use crate::JobStatus::*;
    match status {
        Succeeded => count("JobsSucceeded", job),
        Failed => count("JobsFailed", job),
        Cancelled => count("JobsCancelled", job),
        DeadLettered => count("JobsDeadLettered", job),
        Queued | Running => {}
    }
}

/// A run ended in a retry after a retryable error.
pub fn retried(job: &JobRecord) {
    count("Retries", job);
}

/// A run ran out of invocation time and the job continues in a new one.
pub fn continued(job: &JobRecord) {
    count("Continuations", job);
}

/// A job that ran out of the fast worker's time moves to the slow queue
/// (counted with the queue it left).
pub fn promoted(job: &JobRecord) {
    count("JobsPromoted", job);
}

/// A job found no room under its limit `name` and waits.
pub fn limit_wait(name: &str) {
    metrics::counter!("LimitWaits").increment(1);
    metrics::counter!("LimitWaits", "Limit" => name.to_owned()).increment(1);
}
