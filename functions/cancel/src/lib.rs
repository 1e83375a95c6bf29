//! The cancel function: `POST /jobs/{id}/cancel`.
//!
//! A queued job becomes CANCELLED at once and is never started (its message
//! is dropped when it arrives). A running job gets `cancel_requested`; its
//! worker sees it at the job's next progress write or heartbeat and ends it
//! CANCELLED. Both answer `202` with the job view. A job that has already
//! ended answers `409`; another caller's or an unknown job `404`. A step of
//! a chain that succeeded passes the cancel on to the chain's live step, so
//! cancelling a chain's first job cancels the rest. A job with a callback is
//! announced to the webhook queue before it may end.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_aws::AwsClients;
use longrun_core::access::owned_job;
use longrun_core::api::{job_view, JobView, Problem, STORE_RETRY_AFTER_SECONDS};
use longrun_core::chain::{next_job_id, MAX_CHAIN_STEPS};
use longrun_core::ports::{CancelOutcome, JobQueue, JobStore};
use longrun_core::time::now_ms;
use longrun_core::webhook::announce_end;
use longrun_core::{Config, JobRecord};
use longrun_lambda::apigw::{json_response, problem_response};
use longrun_lambda::identity::caller;
use longrun_lambda::HttpFunction;
use tracing::Instrument;

/// What cancel needs; built once per process.
#[derive(Clone)]
pub struct CancelDeps {
    /// The configuration, read once per process.
    pub config: Arc<Config>,
    /// The jobs table.
    pub store: Arc<dyn JobStore>,
    /// Only to announce an end to the webhook queue before writing it.
    pub queue: Arc<dyn JobQueue>,
}

impl CancelDeps {
    /// The production wiring over the process's AWS clients.
    pub fn from_aws(config: Arc<Config>, clients: &AwsClients) -> Self {
        CancelDeps {
            store: clients.job_store(&config),
            queue: clients.job_queue(&config),
            config,
        }
    }
}

#[longrun_core::async_trait]
impl HttpFunction for CancelDeps {
    async fn call(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        handle(self, request).await
    }
}

/// Handles one API Gateway request; never fails, every error is a problem response.
pub async fn handle(deps: &CancelDeps, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let raw_id = request.path_parameters.get("id").cloned().unwrap_or_default();
    let span = tracing::info_span!("cancel", job_id = %raw_id);
    async {
        match cancel(deps, &request, &raw_id).await {
            Ok(view) => json_response(202, &view, &[("location", format!("/jobs/{raw_id}"))]),
            Err(problem) => problem_response(&problem),
        }
    }
    .instrument(span)
    .await
}

async fn cancel(deps: &CancelDeps, request: &ApiGatewayV2httpRequest, raw_id: &str) -> Result<JobView, Problem> {
    let owner = caller(request, &deps.config)?;
    let job = owned_job(deps.store.as_ref(), raw_id, &owner).await?;
    // A chain whose step has succeeded goes on in its next step: cancelling
    // any earlier step (its first job, say) cancels the step that is live.
    let job = match live_step_after(deps, job).await? {
        Some(live) => live,
        None => {
            return Err(Problem::conflict(format!(
                "job {raw_id} has already ended, and so has every step after it; nothing to cancel"
            )))
        }
    };
    let id = job.id.clone();
    if let Err(err) = announce_end(deps.queue.as_ref(), &job, now_ms()).await {
        tracing::error!(error = %err, "could not announce the end to the webhook queue; not cancelled");
        return Err(Problem::unavailable(
            "the webhook queue is unavailable; retry shortly",
            STORE_RETRY_AFTER_SECONDS,
        ));
    }
    match deps.store.request_cancel(&id, now_ms()).await? {
        CancelOutcome::Cancelled(job) => {
            tracing::info!("queued job cancelled");
            Ok(job_view(&job, Vec::new()))
        }
        CancelOutcome::Requested(job) => {
            tracing::info!("cancel requested of a running job");
            Ok(job_view(&job, Vec::new()))
        }
        CancelOutcome::AlreadyFinished(job) => match next_job_id(&job) {
            // It succeeded meanwhile and its next step took over: cancel that.
            Some(next) => Box::pin(cancel(deps, request, next.as_str())).await,
            None => Err(Problem::conflict(format!(
                "job {id} has already ended ({}); nothing to cancel",
                job.status
            ))),
        },
        CancelOutcome::NotFound => Err(Problem::not_found(format!("no job {raw_id:?}"))),
    }
}

/// `job` if it has not ended, or else the live step of its chain after it
/// (following `next_job_id`); `None` when it and every step after it ended.
async fn live_step_after(deps: &CancelDeps, mut job: JobRecord) -> Result<Option<JobRecord>, Problem> {
    for _ in 0..=MAX_CHAIN_STEPS {
        if !job.status.is_terminal() {
            return Ok(Some(job));
        }
        let Some(next) = next_job_id(&job) else {
            return Ok(None);
        };
        match deps.store.get(&next).await? {
            Some(step) => job = step,
            None => return Ok(None),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_core::memory::MemoryJobStore;
    use longrun_core::ports::JobLifecycle;
    use longrun_core::record::Lease;
    use longrun_core::{JobId, JobRecord, JobStatus};
    use longrun_lambda::apigw::HttpEvent;
    use serde_json::json;

    fn fixture() -> (CancelDeps, Arc<MemoryJobStore>) {
        let store = Arc::new(MemoryJobStore::new());
        let deps = CancelDeps {
            config: Arc::new(longrun_core::fixtures::config(&[])),
            store: store.clone(),
            queue: Arc::new(longrun_core::memory::MemoryJobQueue::new(&["fast", "webhooks"])),
        };
        (deps, store)
    }

    fn job(store: &MemoryJobStore) -> JobRecord {
        let job = longrun_core::fixtures::queued_job(
            &longrun_lambda::apigw::local_owner("alice"),
            "sleep",
            json!({"seconds": 1}),
        );
        store.insert(job.clone());
        job
    }

    #[tokio::test]
    async fn a_caller_without_identity_is_401_and_nothing_changes() {
        let (deps, store) = fixture();
        let job = job(&store);
        let mut request = post(job.id.as_str(), "alice");
        request.request_context.authorizer = None;
        let response = handle(&deps, request).await;
        assert_eq!(response.status_code, 401);
        assert_eq!(response.headers["www-authenticate"], "Bearer");
        assert_eq!(store.get(&job.id).await.unwrap().unwrap().status, JobStatus::Queued);
    }

    fn post(id: &str, owner: &str) -> ApiGatewayV2httpRequest {
        HttpEvent {
            route_key: "POST /jobs/{id}/cancel",
            method: "POST",
            path: &format!("/jobs/{id}/cancel"),
            query: "",
            headers: Vec::new(),
            body: None,
            path_parameters: vec![("id".into(), id.into())],
            jwt_claims: HttpEvent::claims_of(Some(owner)),
        }
        .to_request()
    }

    use longrun_lambda::fixtures::response_json as body;

    #[tokio::test]
    async fn a_queued_job_is_cancelled_at_once() {
        let (deps, store) = fixture();
        let job = job(&store);
        let response = handle(&deps, post(job.id.as_str(), "alice")).await;
        assert_eq!(response.status_code, 202);
        assert_eq!(body(&response)["status"], "CANCELLED");
        let stored = store.get(&job.id).await.unwrap().unwrap();
        assert_eq!(stored.status, JobStatus::Cancelled);
        assert!(stored.finished_at.is_some());
        assert_eq!(stored.due_at, None);
    }

    #[tokio::test]
    async fn a_running_job_is_asked_to_stop() {
        let (deps, store) = fixture();
        let job = job(&store);
        store
            .claim(&job.id, &Lease::new(now_ms() + 60_000), now_ms())
            .await
            .unwrap();
        let response = handle(&deps, post(job.id.as_str(), "alice")).await;
        assert_eq!(response.status_code, 202);
        let view = body(&response);
        assert_eq!(
            (view["status"].as_str(), view["cancel_requested"].as_bool()),
            (Some("RUNNING"), Some(true))
        );
    }

    #[tokio::test]
    async fn ended_foreign_and_unknown_jobs_are_refused() {
        let (deps, store) = fixture();
        let job = job(&store);
        assert_eq!(handle(&deps, post(job.id.as_str(), "mallory")).await.status_code, 404);
        assert_eq!(store.get(&job.id).await.unwrap().unwrap().status, JobStatus::Queued);
        assert_eq!(handle(&deps, post("nope", "alice")).await.status_code, 404);
        assert_eq!(
            handle(&deps, post(JobId::random().as_str(), "alice")).await.status_code,
            404
        );
        assert_eq!(handle(&deps, post(job.id.as_str(), "alice")).await.status_code, 202);
        let again = handle(&deps, post(job.id.as_str(), "alice")).await;
        assert_eq!(again.status_code, 409);
        assert_eq!(again.headers["content-type"], "application/problem+json");
    }
}
