//! The status function: `GET /jobs/{id}` and `GET /jobs`.
//!
//! `GET /jobs?status=&limit=&cursor=` lists the caller's jobs, newest first
//! (the `by-owner` index), `limit` 1–100 (default 20), without result links
//! (fetch a job for those).
//!
//! Answers the job view (status, progress, attempts, timestamps, error) and,
//! once SUCCEEDED, presigned short-lived URLs for each result object. Another
//! caller's job, an unknown id and a malformed id are all `404`, so ids
//! cannot be probed. `?wait=N` (N ≤ 20) long-polls: it answers as soon as
//! the job is terminal, or after N seconds with whatever it is then.
//!
//! A QUEUED job's view carries `queue_depth`: how many messages wait in its
//! queue (sampled, at most `QUEUE_DEPTH_SAMPLE_MS` old) — roughly the work
//! ahead of it, for a caller deciding whether to wait.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_aws::AwsClients;
use longrun_core::access::owned_job;
use longrun_core::api::{
    over_per_minute_limit, presign_results, ChainStepView, ChainView, JobList, JobView, Problem, ResultView,
    StreamUrlView,
};
use longrun_core::backpressure::DepthGauge;
use longrun_core::chain::{chain_status, next_job_id};
use longrun_core::ports::StreamTicket;
use longrun_core::ports::{JobStore, ObjectStore};
use longrun_core::time::{now_ms, rfc3339};
use longrun_core::{Config, JobRecord, JobStatus};
use longrun_lambda::apigw::{json_response, problem_response};
use longrun_lambda::identity::caller;
use longrun_lambda::HttpFunction;
use tracing::Instrument;

/// The longest `?wait=` accepted, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 20;
/// How often a long poll re-reads the record.
const WAIT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What status needs; built once per process.
#[derive(Clone)]
pub struct StatusDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// Job inputs and results.
    pub objects: Arc<dyn ObjectStore>,
    /// Sampled queue depths, shown on QUEUED jobs.
    pub depths: Arc<DepthGauge>,
}

impl StatusDeps {
    /// The production wiring: DynamoDB, S3 and SQS (read-only use).
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        StatusDeps {
            store: clients.job_store(&config),
            objects: clients.object_store(&config),
            depths: Arc::new(DepthGauge::new(clients.job_queue(&config), config.queue_depth_sample)),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl HttpFunction for StatusDeps {
    async fn call(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        handle(self, request).await
    }
}

/// Most jobs on one `GET /jobs` page.
pub const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 20;

/// Handles one API Gateway request; never fails, every error is a problem response.
pub async fn handle(deps: &StatusDeps, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let Some(raw_id) = request.path_parameters.get("id").cloned() else {
        return match list(deps, &request).await {
            Ok(page) => json_response(200, &page, &[("cache-control", "no-store".to_owned())]),
            Err(problem) => problem_response(&problem),
        };
    };
    let span = tracing::info_span!("status", job_id = %raw_id);
    if request.route_key.as_deref() == Some(STREAM_ROUTE) {
        return async {
            match stream_url(deps, &request, &raw_id).await {
                Ok(view) => json_response(201, &view, &[("cache-control", "no-store".to_owned())]),
                Err(problem) => problem_response(&problem),
            }
        }
        .instrument(span)
        .await;
    }
    async {
        match job_view(deps, &request, &raw_id).await {
            Ok(view) => json_response(200, &view, &[("cache-control", "no-store".to_owned())]),
            Err(problem) => problem_response(&problem),
        }
    }
    .instrument(span)
    .await
}

/// The route that hands out a job's event stream URL.
pub const STREAM_ROUTE: &str = "POST /jobs/{id}/stream";

/// `POST /jobs/{id}/stream`: a URL of the events function (`EVENTS_URL`)
/// with a fresh ticket for this job, its owner's only.
async fn stream_url(
    deps: &StatusDeps,
    request: &ApiGatewayV2httpRequest,
    raw_id: &str,
) -> Result<StreamUrlView, Problem> {
    let owner = caller(request, &deps.config)?;
    let job = owned_job(deps.store.as_ref(), raw_id, &owner).await?;
    let base = deps
        .config
        .events_url
        .as_deref()
        .ok_or_else(|| Problem::unavailable("this stack has no event stream (EVENTS_URL is not set)", 60))?;
    let now = now_ms();
    let limit = deps.config.stream_tickets_per_minute;
    if let Some(refused) =
        over_per_minute_limit(deps.store.as_ref(), &owner, "stream-tickets", "stream URLs", limit, now).await?
    {
        return Err(refused);
    }
    let expires_at = now + deps.config.stream_ticket_ttl_seconds * 1000;
    let (token, ticket) = StreamTicket::issue(&owner, &job.id, expires_at);
    deps.store.put_stream_ticket(&ticket).await?;
    Ok(StreamUrlView {
        url: format!("{}/jobs/{}/events?ticket={token}", base.trim_end_matches('/'), job.id),
        expires_at: rfc3339(expires_at),
    })
}

async fn job_view(deps: &StatusDeps, request: &ApiGatewayV2httpRequest, raw_id: &str) -> Result<JobView, Problem> {
    let owner = caller(request, &deps.config)?;
    let mut job = owned_job(deps.store.as_ref(), raw_id, &owner).await?;
    let wait = wait_seconds(request)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    while !job.status.is_terminal() && tokio::time::Instant::now() + WAIT_POLL_INTERVAL <= deadline {
        tokio::time::sleep(WAIT_POLL_INTERVAL).await;
        job = owned_job(deps.store.as_ref(), raw_id, &owner).await?;
    }
    let results = presigned_results(deps, &job).await?;
    let mut view = longrun_core::api::job_view(&job, results);
    if job.status == JobStatus::Queued {
        view.queue_depth = deps.depths.depth(&job.queue).await;
    }
    view.chain = chain_view(deps, &job).await?;
    Ok(view)
}

/// The whole chain, when `job` is a chain's first job: each step's record,
/// read by following `next_job_id` (one read a step that exists), and the
/// chain's overall status.
async fn chain_view(deps: &StatusDeps, job: &JobRecord) -> Result<Option<ChainView>, Problem> {
    let Some(link) = job.chain.as_ref().filter(|l| l.step == 0) else {
        return Ok(None);
    };
    let mut records = vec![job.clone()];
    while let Some(next) = records.last().and_then(next_job_id) {
        match deps.store.get(&next).await? {
            Some(step) if records.len() <= link.then.len() => records.push(step),
            _ => break,
        }
    }
    let types = std::iter::once(job.job_type.clone()).chain(link.then.iter().map(|s| s.job_type.clone()));
    let steps = types
        .enumerate()
        .map(|(i, job_type)| match records.get(i) {
            Some(record) => ChainStepView {
                job_type,
                job_id: Some(record.id.to_string()),
                status: record.status.to_string(),
            },
            None => ChainStepView {
                job_type,
                job_id: None,
                status: "PENDING".into(),
            },
        })
        .collect();
    Ok(Some(ChainView {
        status: chain_status(&records).to_string(),
        steps,
    }))
}

async fn list(deps: &StatusDeps, request: &ApiGatewayV2httpRequest) -> Result<JobList, Problem> {
    let owner = caller(request, &deps.config)?;
    let query = &request.query_string_parameters;
    let status = query
        .first("status")
        .map(|raw| {
            JobStatus::parse(raw).ok_or_else(|| {
                Problem::malformed(format!(
                    "status must be one of {}",
                    JobStatus::ALL.map(JobStatus::as_str).join(", ")
                ))
            })
        })
        .transpose()?;
    let limit = match query.first("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| Problem::malformed(format!("limit must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    let cursor = query.first("cursor").filter(|c| !c.is_empty());
    let page = deps.store.list_by_owner(&owner, status, limit, cursor).await?;
    Ok(JobList {
        jobs: page
            .jobs
            .iter()
            .map(|job| longrun_core::api::job_view(job, Vec::new()))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

fn wait_seconds(request: &ApiGatewayV2httpRequest) -> Result<u64, Problem> {
    match request.query_string_parameters.first("wait") {
        None => Ok(0),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|w| *w <= MAX_WAIT_SECONDS)
            .ok_or_else(|| {
                Problem::malformed(format!(
                    "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}"
                ))
            }),
    }
}

async fn presigned_results(deps: &StatusDeps, job: &JobRecord) -> Result<Vec<ResultView>, Problem> {
    presign_results(deps.objects.as_ref(), job, deps.config.result_url_ttl)
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "presigning failed");
            Problem::unavailable("result links are unavailable; retry shortly", 1)
        })
}

#[cfg(test)]
mod tests;
