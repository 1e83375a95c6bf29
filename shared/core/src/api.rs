//! The HTTP API's bodies as the functions build them: a record's view, a
//! SUCCEEDED job's presigned results, and how a storage failure becomes a
//! problem. The bodies themselves are the wire types of [`longrun_types`],
//! re-exported here.

pub use longrun_types::api::*;

use crate::ports::{OwnerData, RateWindow, StoreError};
use crate::record::JobRecord;
use crate::time::rfc3339;

/// The view of `callback` for a job in generation `generation`.
pub fn callback_view(callback: &crate::record::Callback, generation: u32) -> CallbackView {
    let callback = callback.for_generation(generation);
    let state = if callback.delivered_at.is_some() {
        "delivered"
    } else if callback.failed_at.is_some() {
        "failed"
    } else {
        "pending"
    };
    CallbackView {
        url: callback.url.clone(),
        state: state.into(),
        attempts: callback.attempts,
        last_status: callback.last_status,
        last_error: callback.last_error.clone(),
        next_attempt_at: callback.next_attempt_at.filter(|_| !callback.settled()).map(rfc3339),
        delivered_at: callback.delivered_at.map(rfc3339),
    }
}

/// The view of `job`, with `results` already presigned (empty unless SUCCEEDED).
pub fn job_view(job: &JobRecord, results: Vec<ResultView>) -> JobView {
    JobView {
        id: job.id.to_string(),
        job_type: job.job_type.clone(),
        status: job.status.to_string(),
        queue: job.queue.clone(),
        priority: job.priority,
        progress: job.progress,
        message: job.progress_message.clone(),
        attempts: job.attempts,
        takeovers: job.takeovers,
        max_attempts: job.max_attempts,
        timeout_seconds: job.timeout_seconds,
        cancel_requested: job.cancel_requested,
        created_at: rfc3339(job.created_at),
        updated_at: rfc3339(job.updated_at),
        run_at: job.run_at.map(rfc3339),
        started_at: job.started_at.map(rfc3339),
        finished_at: job.finished_at.map(rfc3339),
        error: job.error.clone(),
        result_url: results.first().map(|r| r.url.clone()),
        results,
        queue_depth: None,
        limit: job.limit.as_deref().map(|key| crate::limits::name_of(key).to_owned()),
        schedule_id: job.schedule.as_ref().map(|s| s.schedule_id.clone()),
        schedule_tick_at: job.schedule.as_ref().map(|s| rfc3339(s.tick_at)),
        callback: job.callback.as_ref().map(|c| callback_view(c, job.generation)),
        chain_id: job.chain.as_ref().map(|c| c.chain_id.to_string()),
        previous_job_id: job
            .chain
            .as_ref()
            .and_then(|c| c.previous_job_id.as_ref())
            .map(|id| id.to_string()),
        next_job_id: crate::chain::next_job_id(job).map(|id| id.to_string()),
        chain: None,
    }
}

/// The result objects of a SUCCEEDED job with download URLs valid for
/// `ttl` (presigning is local: no request); none for any other status.
pub async fn presign_results(
    objects: &dyn crate::ports::ObjectStore,
    job: &JobRecord,
    ttl: std::time::Duration,
) -> Result<Vec<ResultView>, crate::ports::ObjectError> {
    if job.status != crate::record::JobStatus::Succeeded {
        return Ok(Vec::new());
    }
    let mut views = Vec::with_capacity(job.results.len());
    for result in &job.results {
        views.push(ResultView {
            name: result.name.clone(),
            content_type: result.content_type.clone(),
            bytes: result.bytes,
            url: objects.presign_get(&result.key, ttl).await?,
        });
    }
    Ok(views)
}

/// How a storage failure reaches an HTTP caller, in one place (the axum
/// way): an unknown cursor is the caller's mistake (400), a missing job is
/// 404, and anything else is ours, logged here and answered 503 with a short
/// `Retry-After`, never a 5xx without one.
impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidCursor => Problem::malformed("cursor is not one this API handed out"),
            StoreError::NotFound => Problem::not_found("no such job"),
            other => {
                tracing::error!(error = %other, "job store unavailable");
                Problem::unavailable("the job store is unavailable; retry shortly", STORE_RETRY_AFTER_SECONDS)
            }
        }
    }
}

/// Seconds a caller is told to wait when the job store is unavailable.
pub const STORE_RETRY_AFTER_SECONDS: u32 = 1;

/// Counts one more `counter` (`stream-tickets`, `upload-urls`) for `owner`
/// in this minute's window, within `per_minute` (0: no limit): `None` when
/// counted, or the `429 rate-limited` problem naming `what` (with the
/// seconds until the window ends) when the owner had `per_minute` already.
pub async fn over_per_minute_limit<S: OwnerData + ?Sized>(
    store: &S,
    owner: &str,
    counter: &str,
    what: &str,
    per_minute: u32,
    now_ms: i64,
) -> Result<Option<Problem>, StoreError> {
    if per_minute == 0 {
        return Ok(None);
    }
    let window = RateWindow::at(now_ms, 60_000, per_minute);
    if store.count_in_window(owner, counter, &window).await? {
        return Ok(None);
    }
    tracing::warn!(counter, limit = per_minute, "owner at its limit per minute; refused");
    Ok(Some(Problem::rate_limited(
        what,
        per_minute,
        window.seconds_left(now_ms),
    )))
}
