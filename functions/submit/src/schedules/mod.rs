//! `POST /schedules`, `GET /schedules`, `GET|PATCH|DELETE /schedules/{id}`:
//! recurring schedules, owned like jobs (another owner's schedule is `404`,
//! as an unknown one), at most `MAX_SCHEDULES_PER_OWNER` per owner, the job
//! template checked at create exactly as `POST /jobs` checks a job. The
//! scheduler pass that makes their ticks' jobs is [`tick`].

pub mod tick;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use longrun_core::api::{FieldError, Problem};
use longrun_core::ports::ScheduleCreate;
use longrun_core::schedule::{
    apply_patch, cancel_waiting_tick, change_schedule, check_request, is_schedule_id, new_schedule_id, ChangeError,
    Changed, Schedule, ScheduleFields, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView,
};
use longrun_core::time::now_ms;
use longrun_core::JobId;
use longrun_lambda::apigw::{json_response, problem_response};
use longrun_lambda::identity::caller;
use tracing::Instrument;

use crate::request::{check_callback, json_body, validate};
use crate::SubmitDeps;

/// The routes this module answers.
pub const ROUTES: [&str; 5] = [
    "POST /schedules",
    "GET /schedules",
    "GET /schedules/{id}",
    "PATCH /schedules/{id}",
    "DELETE /schedules/{id}",
];

/// Most schedules on one `GET /schedules` page.
const MAX_PAGE: usize = 100;
const DEFAULT_PAGE: usize = 20;

/// The schedule settings, read from the function's environment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScheduleSettings {
    /// `MAX_SCHEDULES_PER_OWNER` (default 100).
    pub(crate) max_per_owner: u32,
    /// `SCHEDULE_MIN_INTERVAL_SECONDS` (default 60): the shortest rate.
    pub(crate) min_interval_seconds: u32,
}

impl ScheduleSettings {
    pub(crate) fn read(config: &longrun_core::Config) -> Result<Self, longrun_core::config::ConfigError> {
        Ok(ScheduleSettings {
            max_per_owner: config.settings.number("MAX_SCHEDULES_PER_OWNER", 100)?,
            min_interval_seconds: config.settings.positive("SCHEDULE_MIN_INTERVAL_SECONDS", 60)?,
        })
    }
}

/// Answers one of [`ROUTES`]; never fails, every error is a problem response.
pub async fn handle(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
    let id = request.path_parameters.get("id").cloned().unwrap_or_default();
    let span = tracing::info_span!("schedules", schedule_id = %id);
    let answer = async {
        match request.route_key.as_deref() {
            Some("POST /schedules") => create(deps, request).await.map(|view| {
                let location = format!("/schedules/{}", view.id);
                json_response(201, &view, &[("location", location)])
            }),
            Some("GET /schedules") => list(deps, request)
                .await
                .map(|page| json_response(200, &page, &no_store())),
            Some("GET /schedules/{id}") => get(deps, request, &id)
                .await
                .map(|view| json_response(200, &view, &no_store())),
            Some("PATCH /schedules/{id}") => patch(deps, request, &id)
                .await
                .map(|view| json_response(200, &view, &[])),
            Some("DELETE /schedules/{id}") => delete(deps, request, &id).await.map(|()| no_content()),
            other => Err(Problem::not_found(format!("no route {other:?}"))),
        }
    }
    .instrument(span)
    .await;
    answer.unwrap_or_else(|problem| {
        tracing::info!(status = problem.status, detail = %problem.detail, "schedule request refused");
        problem_response(&problem)
    })
}

fn no_content() -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = 204;
    response
}

fn no_store() -> [(&'static str, String); 1] {
    [("cache-control", "no-store".to_owned())]
}

fn settings(deps: &SubmitDeps) -> Result<ScheduleSettings, Problem> {
    ScheduleSettings::read(&deps.config).map_err(|e| {
        tracing::error!(error = %e, "schedule settings");
        Problem::unavailable("schedules are misconfigured on this stack", 60)
    })
}

/// Every check of a schedule request, the job template's included (its
/// fields named `job.<field>`): the checked fields, or `422`.
async fn checked(
    deps: &SubmitDeps,
    request: ScheduleRequest,
    owner: &str,
    now: i64,
) -> Result<ScheduleFields, Problem> {
    let settings = settings(deps)?;
    let fields = check_request(request, now, settings.min_interval_seconds)
        .map_err(|errors| Problem::invalid("the schedule is not valid", errors))?;
    let job = validate(deps, fields.job.clone(), JobId::random(), owner).map_err(as_job_fields)?;
    check_callback(deps, &job).await.map_err(as_job_fields)?;
    Ok(fields)
}

/// A job problem as one of the schedule's: its fields under `job.`.
fn as_job_fields(mut problem: Problem) -> Problem {
    if problem.status == 422 {
        problem.detail = format!("the schedule's job is not valid: {}", problem.detail);
        for error in &mut problem.errors {
            error.field = format!("job.{}", error.field);
        }
        if problem.errors.is_empty() {
            problem.errors.push(FieldError {
                field: "job".into(),
                message: "not a valid job".into(),
            });
        }
    }
    problem
}

async fn create(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> Result<ScheduleView, Problem> {
    let owner = caller(request, &deps.config)?;
    let body: ScheduleRequest = json_body(deps, request, "schedule")?;
    let now = now_ms();
    let fields = checked(deps, body, &owner, now).await?;
    let mut schedule = Schedule {
        id: new_schedule_id(),
        owner: owner.clone(),
        name: fields.name,
        cron: fields.cron,
        rate: fields.rate,
        timezone: fields.timezone,
        job: fields.job,
        overlap: fields.overlap,
        start_at: fields.start_at,
        end_at: fields.end_at,
        paused: fields.paused,
        created_at: now,
        updated_at: now,
        next_fire_at: None,
        last_job_id: None,
        last_job_tick_at: None,
        recent_runs: Vec::new(),
        version: 1,
    };
    schedule.next_fire_at = schedule.next_fire_after(now);
    let cap = settings(deps)?.max_per_owner;
    match deps.store.create_schedule(&schedule, cap).await? {
        ScheduleCreate::Created => {
            tracing::info!(schedule_id = %schedule.id, next_fire_at = ?schedule.next_fire_at, "schedule created");
            Ok(schedule.view(|_| None))
        }
        ScheduleCreate::CapReached => Err(Problem::conflict(format!(
            "you keep {cap} schedules, the most this stack allows (MAX_SCHEDULES_PER_OWNER); delete one first"
        ))),
    }
}

async fn list(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest) -> Result<ScheduleList, Problem> {
    let owner = caller(request, &deps.config)?;
    let query = &request.query_string_parameters;
    let limit = match query.first("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Problem::malformed(format!("limit must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    let cursor = query.first("cursor").filter(|c| !c.is_empty());
    let page = deps.store.list_schedules(&owner, limit, cursor).await?;
    Ok(ScheduleList {
        schedules: page.schedules.iter().map(|s| s.view(|_| None)).collect(),
        next_cursor: page.next_cursor,
    })
}

/// The caller's schedule `id`: another owner's, an unknown id and a
/// malformed one are all `404`.
async fn owned(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest, id: &str) -> Result<(String, Schedule), Problem> {
    let owner = caller(request, &deps.config)?;
    let missing = || Problem::not_found("no such schedule");
    if !is_schedule_id(id) {
        return Err(missing());
    }
    match deps.store.get_schedule(id).await? {
        Some(schedule) if schedule.owner == owner => Ok((owner, schedule)),
        _ => Err(missing()),
    }
}

async fn get(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest, id: &str) -> Result<ScheduleView, Problem> {
    let (_, schedule) = owned(deps, request, id).await?;
    let mut statuses = std::collections::HashMap::new();
    for job_id in schedule.recent_runs.iter().filter_map(|r| r.job_id.as_ref()) {
        if let Some(job) = deps.store.get_eventually(job_id).await? {
            statuses.insert(job_id.clone(), job.status.to_string());
        }
    }
    Ok(schedule.view(|job_id| statuses.get(job_id).cloned()))
}

async fn patch(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest, id: &str) -> Result<ScheduleView, Problem> {
    let body: SchedulePatch = json_body(deps, request, "schedule change")?;
    let (owner, _) = owned(deps, request, id).await?;
    let change = change_schedule(deps.store.as_ref(), id, |stored, now| {
        let (body, owner) = (body.clone(), owner.clone());
        async move {
            if stored.owner != owner {
                return Err(Problem::not_found("no such schedule"));
            }
            let fields = checked(deps, apply_patch(&stored, body), &owner, now).await?;
            Ok(Some(Schedule {
                name: fields.name,
                cron: fields.cron,
                rate: fields.rate,
                timezone: fields.timezone,
                job: fields.job,
                overlap: fields.overlap,
                start_at: fields.start_at,
                end_at: fields.end_at,
                paused: fields.paused,
                ..stored
            }))
        }
    });
    match change.await {
        Ok(Changed::Written(schedule) | Changed::AlreadySo(schedule)) => Ok(schedule.view(|_| None)),
        Err(ChangeError::Missing) => Err(Problem::not_found("no such schedule")),
        Err(ChangeError::Refused(problem)) => Err(problem),
        Err(ChangeError::KeptChanging) => Err(Problem::conflict(
            "the schedule kept changing while this change was made; read it and try again",
        )),
        Err(ChangeError::Store(err)) => Err(err.into()),
    }
}

async fn delete(deps: &SubmitDeps, request: &ApiGatewayV2httpRequest, id: &str) -> Result<(), Problem> {
    let (owner, stored) = owned(deps, request, id).await?;
    cancel_waiting_tick(deps.store.as_ref(), &stored, now_ms()).await;
    if !deps.store.delete_schedule(&owner, id).await? {
        return Err(Problem::not_found("no such schedule"));
    }
    tracing::info!("schedule deleted");
    Ok(())
}
