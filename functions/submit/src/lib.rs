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
//! steps are checked like the job itself. It also answers `POST /uploads`
//! and `POST /webhook-secret`.

mod upload;
mod webhook_secret;

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_aws::AwsClients;
use longrun_core::access::owns_input;
use longrun_core::api::{job_view, FieldError, Problem, SubmitRequest};
use longrun_core::backpressure::{busy_retry_after, DepthGauge};
use longrun_core::chain::{input_for_validation, ChainLink, ChainStep, MAX_CHAIN_STEPS};
use longrun_core::job_types::Registry;
use longrun_core::ports::{CreateOutcome, JobMessage, JobQueue, JobStore, ObjectStore, SlotOutcome};
use longrun_core::record::{hash_json, Callback, NewJob};
use longrun_core::time::now_ms;
use longrun_core::webhook::target::{resolve_checked, CallbackUrl, TargetPolicy};
use longrun_core::{Config, JobId, JobRecord, JobStatus};
use longrun_lambda::apigw::{body_bytes, caller, header, json_response, problem_response};
use longrun_lambda::HttpFunction;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
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
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn JobStore>,
    pub queue: Arc<dyn JobQueue>,
    /// Only to presign uploads under `inputs/`; submit reads no objects.
    pub objects: Arc<dyn ObjectStore>,
    /// Sampled depths of the queues, for backpressure (`QUEUE_MAX_DEPTHS`).
    pub depths: Arc<DepthGauge>,
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
    let owner = caller(request, deps.config.allow_anonymous)?;
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

/// `Retry-After` of a `429` for an owner at its quota of active jobs.
pub const QUOTA_RETRY_AFTER_SECONDS: u32 = 5;

/// How old a reservation of a random job id must be, with no record
/// written for it, before submit takes it for leaked (a crash between the
/// reservation and the put) and frees it.
const LEAKED_RESERVATION_MS: i64 = 60_000;

/// Creates the job within its owner's quota (`MAX_ACTIVE_JOBS_PER_OWNER`):
/// a slot of the owner's active set is reserved first (one conditional
/// request, exact under concurrent submits), then the job is written. A
/// slot this submit took but did not turn into a live job (a replay of an
/// ended job, a reused key, a store failure) is given back.
async fn create_within_quota(deps: &SubmitDeps, new_job: NewJob, has_key: bool) -> Result<Submitted, Problem> {
    let limit = deps.config.max_active_jobs_per_owner;
    if limit == 0 {
        return create_and_enqueue(deps, new_job).await;
    }
    let (owner, id) = (new_job.owner.clone(), new_job.id.clone());
    let newly = match reserve_slot(deps, &owner, &id, limit).await {
        Ok(newly) => newly,
        Err(problem) if problem.status == 429 => return refused_unless_replay(deps, &new_job, has_key, problem).await,
        Err(problem) => return Err(problem),
    };
    let outcome = create_and_enqueue(deps, new_job).await;
    let holds_live_job = match &outcome {
        Ok(Submitted::Accepted(_)) => true,
        Ok(Submitted::Replayed(job)) => !job.status.is_terminal(),
        Err(_) => false,
    };
    if newly && !holds_live_job {
        if let Err(err) = deps.store.release_slot(&owner, &id).await {
            tracing::warn!(error = %err, "could not give back an unused quota slot; a later submit repairs it");
        }
    }
    outcome
}

/// Reserves a slot for job `id`: `Ok(newly)`, or `429` when the owner's
/// set is full even after dropping the jobs in it that have ended (their
/// release lost to a crash) — exact, not eventually so.
async fn reserve_slot(deps: &SubmitDeps, owner: &str, id: &JobId, limit: u32) -> Result<bool, Problem> {
    for round in 0..2 {
        match deps.store.reserve_slot(owner, id, limit).await {
            Ok(SlotOutcome::Reserved { newly }) => return Ok(newly),
            Ok(SlotOutcome::Full { active }) if round == 0 => {
                if repair_slots(deps, owner, &active).await == 0 {
                    break;
                }
            }
            Ok(SlotOutcome::Full { .. }) => break,
            Err(err) => return Err(store_unavailable(err)),
        }
    }
    tracing::warn!(limit, "owner at its quota of active jobs; refused");
    Err(Problem::quota_exceeded(limit, QUOTA_RETRY_AFTER_SECONDS))
}

/// Frees the slots of a full set that no live job holds: jobs that have
/// ended, and random ids reserved over a minute ago whose record was never
/// written. How many it freed.
async fn repair_slots(deps: &SubmitDeps, owner: &str, active: &[JobId]) -> usize {
    let now = now_ms();
    let mut freed = 0;
    for id in active {
        let stale = match deps.store.get(id).await {
            Ok(Some(job)) => job.status.is_terminal() || job.owner != owner,
            Ok(None) => id.created_ms().is_some_and(|made| now - made > LEAKED_RESERVATION_MS),
            Err(_) => false,
        };
        if stale && deps.store.release_slot(owner, id).await.is_ok() {
            tracing::warn!(job_id = %id, "freed a quota slot no live job held");
            freed += 1;
        }
    }
    freed
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
async fn refused_unless_replay(
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

async fn create_and_enqueue(deps: &SubmitDeps, new_job: NewJob) -> Result<Submitted, Problem> {
    let now = now_ms();
    let delay_seconds = new_job.delay_seconds;
    // A live job must not expire (TTL) or be replaced under its key: its
    // record lives through the longest run it may have; ending resets it.
    let live_seconds = deps.config.job_retention_seconds + i64::from(deps.config.max_job_timeout_seconds);
    let job = JobRecord::new_queued(new_job, now, live_seconds, deps.config.enqueue_grace_ms());
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
    let message = JobMessage::for_job(&job, now);
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

fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn idempotency_key(request: &ApiGatewayV2httpRequest) -> Result<Option<String>, Problem> {
    let Some(raw) = request.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::malformed(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key.to_owned()))
}

/// The request's JSON body as a `T` (a `what`: "job", "upload"): JSON media
/// type (415), at most `MAX_REQUEST_BYTES` (413), well-formed (400), an
/// object of the right shape (422).
pub(crate) fn json_body<T: DeserializeOwned>(
    deps: &SubmitDeps,
    request: &ApiGatewayV2httpRequest,
    what: &str,
) -> Result<T, Problem> {
    let content_type = header(request, "content-type").unwrap_or("");
    if !is_json_media_type(content_type) {
        return Err(Problem::unsupported_media_type(format!(
            "send the {what} as JSON with Content-Type: application/json (got {content_type:?})"
        )));
    }
    let body = body_bytes(request)?;
    if body.len() > deps.config.max_request_bytes {
        return Err(Problem::too_large(deps.config.max_request_bytes));
    }
    parse_json(&body, what)
}

fn parse_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed(format!(
            "the request body is empty; send a JSON {what}"
        )));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Problem::malformed(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::invalid("the body must be a JSON object", Vec::new()));
    }
    serde_json::from_value(value).map_err(|e| {
        Problem::invalid(
            format!("the body is not a valid {what}"),
            vec![FieldError {
                field: "body".into(),
                message: e.to_string(),
            }],
        )
    })
}

/// Checks the request against the registry and limits; returns the job to create.
fn validate(deps: &SubmitDeps, request: SubmitRequest, id: JobId, owner: &str) -> Result<NewJob, Problem> {
    let Some(handler) = deps.registry.get(&request.job_type) else {
        return Err(Problem::invalid(
            format!(
                "unknown job type {:?}; known types: {}",
                request.job_type,
                deps.registry.job_types().join(", ")
            ),
            vec![FieldError {
                field: "type".into(),
                message: "unknown job type".into(),
            }],
        ));
    };
    let mut errors = handler.validate(&request.input).err().unwrap_or_default();
    for (field, key) in handler.input_keys(&request.input) {
        // Only the caller's own uploads; the same answer whether another
        // owner's key exists or not, so nothing is learnt about it.
        if !owns_input(owner, &key) && !errors.iter().any(|e| e.field == field) {
            errors.push(FieldError {
                field: field.into(),
                message: "must be a key this caller uploaded (POST /uploads answers one)".into(),
            });
        }
    }
    let config = &deps.config;
    let priority = request.priority.unwrap_or_default();
    let queue = config.queue_for_priority(&request.job_type, priority).to_owned();
    let delay_seconds = request.delay_seconds.unwrap_or(0);
    if delay_seconds > config.max_delay_seconds {
        errors.push(FieldError {
            field: "delay_seconds".into(),
            message: format!("must be at most {}", config.max_delay_seconds),
        });
    }
    let max_attempts = request.max_attempts.unwrap_or(config.default_max_attempts);
    if !(1..=config.max_attempts_limit).contains(&max_attempts) {
        errors.push(FieldError {
            field: "max_attempts".into(),
            message: format!("must be between 1 and {}", config.max_attempts_limit),
        });
    }
    let timeout_seconds = request.timeout_seconds.unwrap_or(config.default_job_timeout_seconds);
    if !(1..=config.max_job_timeout_seconds).contains(&timeout_seconds) {
        errors.push(FieldError {
            field: "timeout_seconds".into(),
            message: format!("must be between 1 and {}", config.max_job_timeout_seconds),
        });
    }
    errors.extend(validate_steps(deps, &request.then, owner));
    if let Some(url) = &request.callback_url {
        if let Err(err) = CallbackUrl::parse(url, &target_policy(config)) {
            errors.push(FieldError {
                field: "callback_url".into(),
                message: err.to_string(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(
            format!("the input is not valid for a {} job", request.job_type),
            errors,
        ));
    }
    let mut hashed = json!({
        "type": request.job_type,
        "input": request.input,
        "priority": priority.as_str(),
        "delay_seconds": delay_seconds,
        "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds,
    });
    // Only when given, so the hash of a request without them is unchanged.
    if let Some(url) = &request.callback_url {
        hashed["callback_url"] = json!(url);
    }
    if !request.then.is_empty() {
        hashed["then"] = json!(request.then);
    }
    let request_hash = hash_json(&hashed);
    let chain = (!request.then.is_empty()).then(|| ChainLink::first(&id, request.then));
    Ok(NewJob {
        id,
        owner: owner.to_owned(),
        job_type: request.job_type,
        queue,
        priority,
        input: request.input,
        request_hash,
        max_attempts,
        timeout_seconds,
        delay_seconds,
        callback: request.callback_url.as_deref().map(Callback::new),
        chain,
    })
}

/// The SSRF guard's policy for callback URLs: `https` to public addresses,
/// unless `WEBHOOK_ALLOW_INSECURE_TARGETS` (test runtimes) says otherwise.
fn target_policy(config: &Config) -> TargetPolicy {
    TargetPolicy {
        allow_insecure: config.webhook_allow_insecure_targets,
    }
}

/// Complaints about the chain's further steps (`then`): at most
/// `MAX_CHAIN_STEPS`, each of a known type with an input valid for it,
/// `{"from_previous": name}` placeholders standing for an input key.
fn validate_steps(deps: &SubmitDeps, steps: &[ChainStep], owner: &str) -> Vec<FieldError> {
    let error = |field: String, message: String| FieldError { field, message };
    if steps.len() > MAX_CHAIN_STEPS {
        return vec![error("then".into(), format!("at most {MAX_CHAIN_STEPS} steps"))];
    }
    let mut errors = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(handler) = deps.registry.get(&step.job_type) else {
            errors.push(error(format!("then[{i}].type"), "unknown job type".into()));
            continue;
        };
        let input = match input_for_validation(&step.input, owner) {
            Ok(input) => input,
            Err(name) => {
                errors.push(error(
                    format!("then[{i}].input"),
                    format!("{{\"from_previous\": {name:?}}} must name a result: [A-Za-z0-9][A-Za-z0-9._-]*"),
                ));
                continue;
            }
        };
        let mut step_errors = handler.validate(&input).err().unwrap_or_default();
        for (field, key) in handler.input_keys(&input) {
            if !owns_input(owner, &key) && !step_errors.iter().any(|e| e.field == field) {
                step_errors.push(error(
                    field.into(),
                    "must be a key this caller uploaded, or a from_previous".into(),
                ));
            }
        }
        errors.extend(
            step_errors
                .into_iter()
                .map(|e| error(format!("then[{i}].{}", e.field), e.message)),
        );
    }
    errors
}

/// The async half of checking a callback: the host resolves only to
/// addresses the SSRF guard allows, and the caller has a webhook secret to
/// sign with. `422` otherwise.
async fn check_callback(deps: &SubmitDeps, job: &NewJob) -> Result<(), Problem> {
    let Some(callback) = &job.callback else { return Ok(()) };
    let invalid = |message: String| {
        Problem::invalid(
            "the callback_url cannot be used",
            vec![FieldError {
                field: "callback_url".into(),
                message,
            }],
        )
    };
    let policy = target_policy(&deps.config);
    let url = CallbackUrl::parse(&callback.url, &policy).map_err(|e| invalid(e.to_string()))?;
    resolve_checked(&url, &policy)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    match deps.store.webhook_secrets(&job.owner).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(invalid(
            "you have no webhook secret to sign deliveries with: POST /webhook-secret first".into(),
        )),
        Err(err) => Err(store_unavailable(err)),
    }
}

#[cfg(test)]
mod tests;
