//! The `/schedules` routes and the scheduler pass, over the memory adapters.

use super::*;
use crate::schedules::tick::pass;
use longrun_core::ports::ScheduleStore;
use longrun_core::schedule::TICK_LOOKAHEAD_MS;

pub(super) fn call(method: &str, path: &str, body: Option<&str>, who: &str) -> ApiGatewayV2httpRequest {
    let id = path.strip_prefix("/schedules/").map(str::to_owned);
    let route = match (&id, path.split_once('?')) {
        (Some(_), _) => format!("{method} /schedules/{{id}}"),
        (None, _) => format!("{method} /schedules"),
    };
    let (plain, query) = path.split_once('?').unwrap_or((path, ""));
    let mut request = HttpEvent {
        route_key: "",
        method,
        path: plain,
        query,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.map(str::as_bytes),
        path_parameters: Vec::new(),
        jwt_claims: HttpEvent::claims_of(Some(who)),
    }
    .to_request();
    request.route_key = Some(route);
    if let Some(id) = id {
        let id = id.split('?').next().unwrap().to_owned();
        request.path_parameters.insert("id".into(), id);
    }
    request
}

async fn create(f: &Fixture, body: Value, who: &str) -> ApiGatewayV2httpResponse {
    handle(&f.deps, call("POST", "/schedules", Some(&body.to_string()), who)).await
}

fn every_minute() -> Value {
    json!({"rate": "1 minute", "job": {"type": "sleep", "input": {"seconds": 1}}})
}

pub(super) async fn created(f: &Fixture, body: Value) -> longrun_core::schedule::Schedule {
    let response = create(f, body, "alice").await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let id = body_json(&response)["id"].as_str().unwrap().to_owned();
    f.store.get_schedule(&id).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_schedule_is_created_with_its_next_five_fire_times_and_is_its_owners_only() {
    let f = fixture();
    let response = create(
        &f,
        json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin", "name": "nightly",
        "job": {"type": "sleep", "input": {"seconds": 1}}}),
        "alice",
    )
    .await;
    assert_eq!(response.status_code, 201, "{:?}", response.body);
    let view = body_json(&response);
    let id = view["id"].as_str().unwrap();
    assert_eq!(response.headers["location"], format!("/schedules/{id}").as_str());
    let fires = view["next_fire_times"].as_array().unwrap();
    assert_eq!(fires.len(), 5);
    assert!(
        fires.iter().all(|t| t.as_str().unwrap().ends_with(":30:00.000Z")),
        "{fires:?}"
    );
    assert_eq!(
        (view["overlap"].as_str(), view["paused"].as_bool()),
        (Some("skip"), Some(false))
    );
    let mine = handle(&f.deps, call("GET", &format!("/schedules/{id}"), None, "alice")).await;
    assert_eq!(mine.status_code, 200);
    for (method, who) in [("GET", "bob"), ("PATCH", "bob"), ("DELETE", "bob")] {
        let other = handle(&f.deps, call(method, &format!("/schedules/{id}"), Some("{}"), who)).await;
        assert_eq!(other.status_code, 404, "{method} by {who}");
    }
    let unknown = handle(&f.deps, call("GET", "/schedules/sch_nope", None, "alice")).await;
    assert_eq!(unknown.status_code, 404);
    let listed = body_json(&handle(&f.deps, call("GET", "/schedules", None, "bob")).await);
    assert_eq!(
        listed["schedules"].as_array().unwrap().len(),
        0,
        "bob sees none of alice's"
    );
}

#[tokio::test]
async fn bad_schedules_are_refused_with_the_field_at_fault() {
    let f = fixture();
    let job = json!({"type": "sleep", "input": {"seconds": 1}});
    // (request, the field refused)
    let table = [
        (json!({"cron": "0 0 * *", "job": job}), "cron"),
        (
            json!({"cron": "0 0 * * *", "timezone": "Europe/Atlantis", "job": job}),
            "timezone",
        ),
        (json!({"rate": "30 seconds", "job": job}), "rate"),
        (
            json!({"rate": "1 hour", "start_at": "2030-02-01T00:00:00Z", "end_at": "2030-01-01T00:00:00Z", "job": job}),
            "end_at",
        ),
        (
            json!({"rate": "1 hour", "job": {"type": "nope", "input": {}}}),
            "job.type",
        ),
        (
            json!({"rate": "1 hour", "job": {"type": "sleep", "input": {"seconds": -1}}}),
            "job.input.seconds",
        ),
        (
            json!({"rate": "1 hour", "job": {"type": "sleep", "input": {"seconds": 1}, "run_at": "2030-01-01T00:00:00Z"}}),
            "job.run_at",
        ),
    ];
    for (body, field) in table {
        let response = create(&f, body.clone(), "alice").await;
        let fields = error_fields(&response);
        assert!(fields.iter().any(|f| f == field), "{body}: {fields:?}");
    }
    let unknown_field = create(&f, json!({"rate": "1 hour", "job": job, "every": 5}), "alice").await;
    assert_eq!(unknown_field.status_code, 422);
    assert_eq!(
        f.store
            .list_schedules(&owner("alice"), 10, None)
            .await
            .unwrap()
            .schedules
            .len(),
        0
    );
}

#[tokio::test]
async fn an_owner_keeps_at_most_the_cap_and_pages_through_them() {
    let f = fixture_with(&[("MAX_SCHEDULES_PER_OWNER", "3")]);
    for _ in 0..3 {
        assert_eq!(create(&f, every_minute(), "alice").await.status_code, 201);
    }
    let over = create(&f, every_minute(), "alice").await;
    assert_eq!(over.status_code, 409);
    assert!(body_json(&over)["detail"]
        .as_str()
        .unwrap()
        .contains("MAX_SCHEDULES_PER_OWNER"));
    assert_eq!(
        create(&f, every_minute(), "bob").await.status_code,
        201,
        "the cap is per owner"
    );
    let first = body_json(&handle(&f.deps, call("GET", "/schedules?limit=2", None, "alice")).await);
    assert_eq!(first["schedules"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = handle(
        &f.deps,
        call("GET", &format!("/schedules?limit=2&cursor={cursor}"), None, "alice"),
    )
    .await;
    let second = body_json(&second);
    assert_eq!(second["schedules"].as_array().unwrap().len(), 1);
    assert!(second.get("next_cursor").is_none());
    let theirs = handle(
        &f.deps,
        call("GET", &format!("/schedules?cursor={cursor}"), None, "bob"),
    )
    .await;
    assert_eq!(theirs.status_code, 400, "a cursor handed to alice is not bob's");
    // Deleting one makes room again.
    let id = first["schedules"][0]["id"].as_str().unwrap();
    assert_eq!(
        handle(&f.deps, call("DELETE", &format!("/schedules/{id}"), None, "alice"))
            .await
            .status_code,
        204
    );
    assert_eq!(create(&f, every_minute(), "alice").await.status_code, 201);
}

#[tokio::test]
async fn each_tick_submits_one_job_with_a_derived_id_however_often_it_is_tried() {
    let f = fixture();
    let schedule = created(
        &f,
        json!({"rate": "1 minute", "overlap": "allow",
        "job": {"type": "sleep", "input": {"seconds": 1}}}),
    )
    .await;
    let tick = schedule.next_fire_at.unwrap();
    assert_eq!(
        pass(&f.deps, tick - TICK_LOOKAHEAD_MS - 1).await.unwrap().due,
        0,
        "not yet"
    );
    // Made ahead, waiting for its tick.
    let report = pass(&f.deps, tick - 30_000).await.unwrap();
    assert_eq!(report.submitted, 1, "{report:?}");
    let job_id = JobId::for_schedule_tick(&schedule.id, tick);
    let job = f.store.get(&job_id).await.unwrap().unwrap();
    assert_eq!((job.status, job.run_at), (JobStatus::Queued, Some(tick)));
    let view = longrun_core::api::job_view(&job, Vec::new());
    assert_eq!(view.schedule_id.as_deref(), Some(schedule.id.as_str()));
    // The same pass again, and a pass whose write of the schedule was lost
    // (the schedule as it was before the tick): still one job.
    assert_eq!(
        pass(&f.deps, tick - 29_000).await.unwrap().submitted,
        0,
        "one tick ahead at most"
    );
    let moved = f.store.get_schedule(&schedule.id).await.unwrap().unwrap();
    assert!(f.store.replace_schedule(&schedule, moved.version).await.unwrap());
    assert_eq!(pass(&f.deps, tick - 28_000).await.unwrap().submitted, 1);
    assert_eq!(f.store.len(), 1, "the retried tick found its job");
    // The next tick, after this one came.
    assert_eq!(pass(&f.deps, tick + 1_000).await.unwrap().submitted, 1);
    assert_eq!(f.store.len(), 2);
    assert!(f
        .store
        .get(&JobId::for_schedule_tick(&schedule.id, tick + 60_000))
        .await
        .unwrap()
        .is_some());
    let read = body_json(
        &handle(
            &f.deps,
            call("GET", &format!("/schedules/{}", schedule.id), None, "alice"),
        )
        .await,
    );
    let runs = read["recent_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (runs[1]["job_id"].as_str(), runs[1]["status"].as_str()),
        (Some(job_id.as_str()), Some("QUEUED"))
    );
}

#[tokio::test]
async fn pausing_cancels_the_waiting_tick_and_resuming_makes_no_missed_ticks() {
    let f = fixture();
    let schedule = created(
        &f,
        json!({"rate": "1 minute", "overlap": "allow",
        "job": {"type": "sleep", "input": {"seconds": 1}}}),
    )
    .await;
    let tick = schedule.next_fire_at.unwrap();
    // A pass made the tick's job ahead (its tick still to come, in real time).
    assert_eq!(pass(&f.deps, tick - 30_000).await.unwrap().submitted, 1);
    let waiting = JobId::for_schedule_tick(&schedule.id, tick);
    let path = format!("/schedules/{}", schedule.id);
    let paused = handle(&f.deps, call("PATCH", &path, Some(r#"{"paused": true}"#), "alice")).await;
    assert_eq!(paused.status_code, 200, "{:?}", paused.body);
    assert_eq!(body_json(&paused)["next_fire_times"].as_array().unwrap().len(), 0);
    assert_eq!(
        f.store.get(&waiting).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    for later in [tick + 60_000, tick + 600_000] {
        assert_eq!(pass(&f.deps, later).await.unwrap().due, 0, "paused: no tick");
    }
    let resumed = handle(&f.deps, call("PATCH", &path, Some(r#"{"paused": false}"#), "alice")).await;
    assert_eq!(resumed.status_code, 200);
    let stored = f.store.get_schedule(&schedule.id).await.unwrap().unwrap();
    let next = stored.next_fire_at.unwrap();
    assert!(
        next > now_ms() && next <= now_ms() + 60_000,
        "from now, not the missed ones: {next}"
    );
    assert_eq!((next - schedule.created_at) % 60_000, 0, "still on the rate's grid");
}

#[tokio::test]
async fn with_overlap_skip_a_tick_makes_no_job_while_the_last_one_has_not_ended() {
    let f = fixture();
    let schedule = created(&f, every_minute()).await;
    let tick = schedule.next_fire_at.unwrap();
    assert_eq!(
        pass(&f.deps, tick - 1).await.unwrap().due,
        0,
        "skip decides at the tick"
    );
    assert_eq!(pass(&f.deps, tick).await.unwrap().submitted, 1);
    let first = JobId::for_schedule_tick(&schedule.id, tick);
    let report = pass(&f.deps, tick + 60_000).await.unwrap();
    assert_eq!(report.skipped, 1, "the first job is still QUEUED: {report:?}");
    assert!(f
        .store
        .get(&JobId::for_schedule_tick(&schedule.id, tick + 60_000))
        .await
        .unwrap()
        .is_none());
    f.store.request_cancel(&first, tick + 61_000).await.unwrap();
    assert_eq!(
        pass(&f.deps, tick + 120_000).await.unwrap().submitted,
        1,
        "ended: the next tick runs"
    );
    let runs = f.store.get_schedule(&schedule.id).await.unwrap().unwrap().recent_runs;
    let outcomes: Vec<&str> = runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["submitted", "skipped", "submitted"]);
}

#[tokio::test]
async fn a_tick_whose_job_is_refused_is_recorded_and_the_schedule_goes_on() {
    let f = fixture_with(&[("MAX_ACTIVE_JOBS_PER_OWNER", "1")]);
    let schedule = created(
        &f,
        json!({"rate": "1 minute", "overlap": "allow",
        "job": {"type": "sleep", "input": {"seconds": 1}}}),
    )
    .await;
    let blocker = post(SLEEP, &[], Some("alice"));
    assert_eq!(handle(&f.deps, blocker).await.status_code, 202);
    let tick = schedule.next_fire_at.unwrap();
    let report = pass(&f.deps, tick).await.unwrap();
    assert_eq!(report.refused, 1, "the owner's quota is full: {report:?}");
    let stored = f.store.get_schedule(&schedule.id).await.unwrap().unwrap();
    assert_eq!(stored.recent_runs[0].outcome.as_str(), "refused");
    assert!(
        stored.recent_runs[0].detail.as_deref().unwrap().contains("1"),
        "{:?}",
        stored.recent_runs
    );
    assert_eq!(stored.next_fire_at, Some(tick + 60_000));
}
