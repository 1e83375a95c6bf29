//! The submit function: `POST /jobs`.
//!
//! Validates the request (media type, size, JSON, known job type, input
//! that parses for that type, limits), writes the job record with ONE
//! conditional PutItem, then sends the job id to the job's queue and answers
//! `202` + `Location` + `Retry-After`. With an `Idempotency-Key` the job id is
//! derived from (caller, key): a replay with the same body answers `200` with
//! the existing job (no second record, no second message); the same key with
//! another body answers `422`, and so does a key whose id holds another
//! caller's job (never handed back). Every refusal is `application/problem+json`.
//! A `callback_url` must pass the SSRF guard (`https`, a host resolving only
//! to public addresses) and its caller must have a webhook secret; `then`
//! steps are checked like the job itself. It also answers `POST /uploads`,
//! `POST /webhook-secret` and the `/schedules` routes ([`schedules`]), and
//! plays the scheduler pass ([`SchedulerDeps`]) that submits their ticks.

mod quota;
mod request;
pub mod schedules;
mod upload;
mod webhook_secret;

use self::quota::create_within_quota;
pub use self::quota::{QuotaRepairs, QUOTA_REPAIR_INTERVAL_MS, QUOTA_RETRY_AFTER_SECONDS};
use self::request::{check_callback, idempotency_key, json_body, validate};
pub use self::schedules::tick::{PassReport, SchedulerDeps};

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_aws::AwsClients;
use longrun_core::api::{job_view, Problem, SubmitRequest};
use longrun_core::backpressure::{busy_retry_after, DepthGauge};
use longrun_core::job_types::Registry;
use longrun_core::ports::{CreateOutcome, JobMessage, JobQueue, JobStore, ObjectStore};
use longrun_core::record::NewJob;
use longrun_core::time::now_ms;
use longrun_core::{Config, JobId, JobRecord, JobStatus};
use longrun_lambda::apigw::{json_response, problem_response};
use longrun_lambda::identity::caller;
use longrun_lambda::HttpFunction;
use tracing::Instrument;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// Seconds a caller is told to wait before polling (`Retry-After`).
const POLL_AFTER_SECONDS: u32 = 1;
/// Seconds a caller is told to wait when storage is unavailable.
const UNAVAILABLE_RETRY_SECONDS: u32 = 2;

/// What submit needs; built once per process.
#[derive(Clone)]
pub struct SubmitDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The job types this app runs.
    pub registry: Arc<Registry>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// The work queues.
    pub queue: Arc<dyn JobQueue>,
    /// Only to presign uploads under `inputs/`; submit reads no objects.
    pub objects: Arc<dyn ObjectStore>,
    /// Sampled depths of the queues, for backpressure (`QUEUE_MAX_DEPTHS`).
    pub depths: Arc<DepthGauge>,
    /// When this process last repaired each owner's full quota.
    pub repairs: Arc<QuotaRepairs>,
}

impl SubmitDeps {
    /// The production wiring, running the job types of `registry` (an
    /// app's own: see `longrun_bootstrap::run`).
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients, registry: Arc<Registry>) -> Self {
        let queue = clients.job_queue(&config);
        SubmitDeps {
            registry,
            store: clients.job_store(&config),
            depths: Arc::new(DepthGauge::new(queue.clone(), config.queue_depth_sample)),
            repairs: Arc::default(),
            queue,
            objects: clients.object_store(&config),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl HttpFunction for SubmitDeps {
    async fn call(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        handle(self, request).await
    }
}

/// How a valid submit ended.
#[derive(Debug)]
pub enum Submitted {
    /// A new job, written and enqueued.
    Accepted(Box<JobRecord>),
    /// An idempotent replay: the job the key already names.
    Replayed(Box<JobRecord>),
}

/// Handles one API Gateway request (`POST /jobs`, or `POST /uploads`);
/// never fails, every error is a problem response.
pub async fn handle(deps: &SubmitDeps, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    match request.route_key.as_deref() {
        Some(upload::ROUTE) => return upload::handle(deps, &request).await,
        Some(webhook_secret::ROUTE) => return webhook_secret::handle(deps, &request).await,
        Some(route) if schedules::ROUTES.contains(&route) => return schedules::handle(deps, &request).await,
        _ => {}
    }
    match submit(deps, &request).await {
        Ok(Submitted::Accepted(job)) => {
            longrun_core::metrics::submitted(&job);
            respond(202, &job)
        }
        Ok(Submitted::Replayed(job)) => respond(200, &job),
        Err(problem) => {
            longrun_core::metrics::rejected(problem.status);
            tracing::info!(status = problem.status, detail = %problem.detail, "submit refused");
            problem_response(&problem)
        }
    }
}

fn respond(status: u16, job: &JobRecord) -> ApiGatewayV2httpResponse {
    json_response(
        status,
        &job_view(job, Vec::new()),
        &[
            ("location", format!("/jobs/{}", job.id)),
            ("retry-after", POLL_AFTER_SECONDS.to_string()),
        ],
    )
}

/// Validates, writes and enqueues a job.
pub async fn submit(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> Result<Submitted, Problem> {
    let owner = caller(request, &deps.config)?;
    let idempotency_key = idempotency_key(request)?;
    let submit_request: SubmitRequest = json_body(deps, request, "job")?;
    let id = match &idempotency_key {
        Some(key) => JobId::for_idempotency_key(&owner, key),
        None => JobId::random(),
    };
    let new_job = validate(deps, submit_request, id, &owner)?;
    check_callback(deps, &new_job).await?;
    let span = tracing::info_span!("submit", job_id = %new_job.id, job_type = %new_job.job_type, owner = %owner);
    async {
        if let Some(busy) = backpressure(deps, &new_job).await {
            return refused_unless_replay(deps, &new_job, idempotency_key.is_some(), busy).await;
        }
        create_within_quota(deps, new_job, idempotency_key.is_some()).await
    }
    .instrument(span)
    .await
}

/// `Some(503 busy)` when the job's queue holds `QUEUE_MAX_DEPTHS` or more
/// waiting messages (as last sampled).
async fn backpressure(deps: &SubmitDeps, job: &NewJob) -> Option<Problem> {
    let max = *deps.config.queue_max_depths.get(&job.queue)?;
    let depth = deps.depths.depth(&job.queue).await?;
    let retry_after = busy_retry_after(depth, max, deps.config.queue_depth_sample)?;
    tracing::warn!(queue = %job.queue, depth, max, retry_after, "queue too deep; refusing new work");
    Some(Problem::busy(
        format!(
            "the {} queue holds {depth} waiting jobs, its limit is {max}; nothing was accepted, \
             retry after {retry_after} s (with the same Idempotency-Key)",
            job.queue
        ),
        retry_after,
    ))
}

/// A busy queue or a full quota refuses new work, never accepted work: a
/// submit with an idempotency key whose job already exists (a replay) still
/// gets its job.
pub(crate) async fn refused_unless_replay(
    deps: &SubmitDeps,
    job: &NewJob,
    has_key: bool,
    busy: Problem,
) -> Result<Submitted, Problem> {
    if !has_key {
        return Err(busy);
    }
    match deps.store.get(&job.id).await {
        Ok(Some(existing)) if existing.expires_at >= now_ms() / 1000 => {
            let existing = replay_of(Box::new(existing), &job.owner, &job.request_hash)?;
            tracing::info!(status = %existing.status, "idempotent replay of a job while new work is refused");
            Ok(Submitted::Replayed(existing))
        }
        _ => Err(busy),
    }
}

/// What a live record already under the job's id means for a submit by
/// `owner` with `request_hash`: a replay of the caller's own job with the
/// same body, or else `422` as for a reused key (the id derives from
/// (caller, key), so another owner's record under it is never a replay, and
/// nothing of that job is handed back).
fn replay_of(existing: Box<JobRecord>, owner: &str, request_hash: &str) -> Result<Box<JobRecord>, Problem> {
    if existing.owner != owner {
        tracing::warn!(stored_owner = %existing.owner, "idempotency key names another owner's job; refused");
        return Err(Problem::idempotency_conflict(existing.id.as_str()));
    }
    if existing.request_hash != request_hash {
        return Err(Problem::idempotency_conflict(existing.id.as_str()));
    }
    Ok(existing)
}

/// The job store failed: `503`. Not `Problem::from`: a submit is retried
/// safely only with the same key, and says so.
pub(crate) fn store_unavailable(err: longrun_core::ports::StoreError) -> Problem {
    tracing::error!(error = %err, "job store unavailable");
    Problem::unavailable(
        "the job store is unavailable; retry (with the same Idempotency-Key) later",
        UNAVAILABLE_RETRY_SECONDS,
    )
}

pub(crate) async fn create_and_enqueue(deps: &SubmitDeps, new_job: NewJob) -> Result<Submitted, Problem> {
    let now = now_ms();
    // A live job must not expire (TTL) or be replaced under its key: its
    // record lives through the longest run it may have; ending resets it.
    let live_seconds = deps.config.job_retention_seconds + i64::from(deps.config.max_job_timeout_seconds);
    let mut job = JobRecord::new_queued(new_job, now, live_seconds, deps.config.enqueue_grace_ms());
    // A start further away than the look-ahead gets its message later, from
    // the reconciler (SQS delays one 15 minutes at most).
    let lookahead_ms = i64::from(deps.config.schedule_lookahead_seconds) * 1000;
    let far = job.schedule_far(now, lookahead_ms);
    match deps.store.create(&job, now).await {
        Ok(CreateOutcome::Created) => {}
        Ok(CreateOutcome::Exists(existing)) => {
            let existing = replay_of(existing, &job.owner, &job.request_hash)?;
            tracing::info!(status = %existing.status, "idempotent replay");
            resend_on_replay(deps, &existing, now).await;
            return Ok(Submitted::Replayed(existing));
        }
        Err(err) => return Err(store_unavailable(err)),
    }
    if far {
        tracing::info!(queue = %job.queue, run_at = ?job.run_at, "job accepted; it is sent when its start is near");
        return Ok(Submitted::Accepted(Box::new(job)));
    }
    let message = JobMessage::for_job(&job, now);
    let delay_seconds = job.wake_delay_seconds(now).unwrap_or(0);
    if let Err(err) = deps.queue.enqueue(&job.queue, &message, delay_seconds).await {
        // The record is written and due at `due_at`; the reconciler sends it
        // again. The job is accepted either way, so the answer stays 202.
        tracing::error!(error = %err, queue = %job.queue, due_at = ?job.due_at, "enqueue failed after the put");
    } else {
        tracing::info!(queue = %job.queue, "job accepted");
    }
    Ok(Submitted::Accepted(Box::new(job)))
}

/// How long a job must have waited unstarted since it became due before a
/// replayed submit sends it again: a replay right after the first submit
/// (a client retrying a timed-out request) finds its message on its way.
pub const REPLAY_RESEND_AFTER_MS: i64 = 1_000;

/// A replayed submit of a job that never started (QUEUED, due for at least
/// [`REPLAY_RESEND_AFTER_MS`], no run yet, nothing re-sent): the first
/// submit's message may have been lost (its SendMessage failed after the
/// put, say), so the job is sent once more now rather than after the
/// reconciler's grace period. At most once per job: the conditional
/// `defer_due` counts it as a resend, and a replay that finds one counted
/// sends nothing. Failures are logged, not answered: the job is accepted
/// either way and the reconciler still has it.
async fn resend_on_replay(deps: &SubmitDeps, job: &JobRecord, now: i64) {
    let never_started = job.status == JobStatus::Queued && job.started_at.is_none() && job.attempts == 0;
    let waited = now - job.run_at.unwrap_or(job.created_at) >= REPLAY_RESEND_AFTER_MS;
    let Some(due_at) = job.due_at else { return };
    if !never_started || !waited || job.resends > 0 || !job.claimable_at(now) {
        return;
    }
    let next_due = now + JobRecord::resend_wait_ms(0, deps.config.enqueue_grace_ms());
    match deps.store.defer_due(&job.id, due_at, next_due, true).await {
        Ok(true) => match deps.queue.enqueue(&job.queue, &JobMessage::for_job(job, now), 0).await {
            Ok(()) => tracing::info!("replay of a job not started yet: sent it once more"),
            Err(err) => tracing::warn!(error = %err, "replay resend failed; the reconciler sends it"),
        },
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, "replay resend not recorded; the reconciler sends it"),
    }
}

#[cfg(test)]
mod tests;
