//! A schedule written by two at once: its owner's change and the
//! scheduler pass. Neither is the caller's conflict, and neither leaves a
//! tick job the schedule no longer wants.

use super::schedules::{call, created};
use super::*;
use crate::schedules::tick::pass;
use longrun_core::ports::ScheduleStore;
use longrun_core::schedule::{RunOutcome, ScheduleRun, CHANGE_TRIES};

fn allow_every_minute() -> Value {
    json!({"rate": "1 minute", "overlap": "allow",
           "job": {"type": "sleep", "input": {"seconds": 1}}})
}

fn a_run_recorded(schedule: &mut longrun_core::schedule::Schedule) {
    schedule.recent_runs.push(ScheduleRun {
        tick_at: schedule.created_at,
        outcome: RunOutcome::Skipped,
        job_id: None,
        detail: Some("recorded by a pass".into()),
    });
}

#[tokio::test]
async fn a_change_that_loses_to_a_pass_is_applied_to_what_the_pass_wrote() {
    let f = fixture();
    let schedule = created(&f, allow_every_minute()).await;
    let path = format!("/schedules/{}", schedule.id);
    f.store.race_next_schedule_write(a_run_recorded);
    f.store.race_next_schedule_write(a_run_recorded);
    let paused = handle(&f.deps, call("PATCH", &path, Some(r#"{"paused": true}"#), "alice")).await;
    assert_eq!(paused.status_code, 200, "{:?}", paused.body);
    let stored = f.store.get_schedule(&schedule.id).await.unwrap().unwrap();
    assert!(stored.paused, "the change applied");
    assert_eq!(stored.recent_runs.len(), 2, "and so did both passes' writes");

    // Only a change that loses every time is the caller's conflict.
    for _ in 0..CHANGE_TRIES {
        f.store.race_next_schedule_write(a_run_recorded);
    }
    let renamed = handle(&f.deps, call("PATCH", &path, Some(r#"{"name": "x"}"#), "alice")).await;
    assert_eq!(renamed.status_code, 409, "{:?}", renamed.body);
    let stored = f.store.get_schedule(&schedule.id).await.unwrap().unwrap();
    assert_eq!(stored.name, schedule.name, "nothing half-applied");
}

#[tokio::test]
async fn a_tick_made_ahead_while_its_schedule_is_paused_is_cancelled_before_it_starts() {
    let f = fixture();
    let schedule = created(&f, allow_every_minute()).await;
    let tick = schedule.next_fire_at.unwrap();
    // The owner pauses between the pass's read and its write.
    f.store.race_next_schedule_write(|s| {
        s.paused = true;
        s.next_fire_at = None;
    });
    let report = pass(&f.deps, tick - 30_000).await.unwrap();
    assert_eq!((report.submitted, report.raced), (0, 1), "{report:?}");
    let made = JobId::for_schedule_tick(&schedule.id, tick);
    let job = f.store.get(&made).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Cancelled, "a paused schedule runs nothing");
}

#[tokio::test]
async fn a_tick_made_ahead_under_a_change_that_keeps_its_timing_stays_and_is_recorded_next_pass() {
    let f = fixture();
    let schedule = created(&f, allow_every_minute()).await;
    let tick = schedule.next_fire_at.unwrap();
    f.store.race_next_schedule_write(|s| s.name = Some("renamed".into()));
    assert_eq!(pass(&f.deps, tick - 30_000).await.unwrap().raced, 1);
    let made = JobId::for_schedule_tick(&schedule.id, tick);
    assert_eq!(f.store.get(&made).await.unwrap().unwrap().status, JobStatus::Queued);
    assert_eq!(pass(&f.deps, tick - 29_000).await.unwrap().submitted, 1);
    let stored = f.store.get_schedule(&schedule.id).await.unwrap().unwrap();
    assert_eq!(stored.recent_runs.last().unwrap().job_id.as_ref(), Some(&made));
    assert_eq!(f.store.len(), 1, "the same job, recorded");
}
