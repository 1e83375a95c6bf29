//! Contract cases of schedules: creates bounded by the owner's cap (exact
//! under concurrent creates), writes fenced by the version, deletes by the
//! owner only, pages oldest first for their owner only, and the due index.

use crate::*;

use longrun_core::ports::ScheduleCreate;
use longrun_core::schedule::{new_schedule_id, Overlap, Schedule, TICK_LOOKAHEAD_MS};

fn schedule(owner: &str, created_at: i64, next_fire_at: Option<i64>) -> Schedule {
    Schedule {
        id: new_schedule_id(),
        owner: owner.to_owned(),
        name: Some("contract".into()),
        cron: Some("*/5 * * * *".into()),
        rate: None,
        timezone: "Europe/Berlin".into(),
        job: serde_json::from_value(serde_json::json!({"type": "sleep", "input": {"seconds": 1}})).unwrap(),
        overlap: Overlap::Skip,
        start_at: None,
        end_at: None,
        paused: false,
        created_at,
        updated_at: created_at,
        next_fire_at,
        last_job_id: None,
        last_job_tick_at: None,
        recent_runs: Vec::new(),
        version: 1,
    }
}

pub(crate) async fn schedules_are_capped_per_owner_exactly_under_concurrent_creates(store: &dyn JobStore) {
    let owner = format!("contract-{}", uuid::Uuid::new_v4());
    let now = now_ms();
    let attempts: Vec<Schedule> = (0..6).map(|i| schedule(&owner, now + i, None)).collect();
    let outcomes = futures_util::future::join_all(attempts.iter().map(|s| store.create_schedule(s, 4))).await;
    let created = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), ScheduleCreate::Created))
        .count();
    assert_eq!(created, 4, "{outcomes:?}");
    let page = store.list_schedules(&owner, 100, None).await.unwrap();
    assert_eq!(page.schedules.len(), 4);
    // Deleting one counts it off; another owner cannot delete it.
    let first = &page.schedules[0];
    assert!(!store.delete_schedule("someone-else", &first.id).await.unwrap());
    assert!(store.delete_schedule(&owner, &first.id).await.unwrap());
    assert!(!store.delete_schedule(&owner, &first.id).await.unwrap(), "gone");
    assert_eq!(
        store
            .create_schedule(&schedule(&owner, now + 10, None), 4)
            .await
            .unwrap(),
        ScheduleCreate::Created
    );
    assert_eq!(
        store
            .create_schedule(&schedule(&owner, now + 11, None), 4)
            .await
            .unwrap(),
        ScheduleCreate::CapReached
    );
}

pub(crate) async fn a_schedule_is_written_only_at_the_version_read_and_read_back_whole(store: &dyn JobStore) {
    let owner = format!("contract-{}", uuid::Uuid::new_v4());
    let now = now_ms();
    let original = schedule(&owner, now, Some(now + 300_000));
    assert_eq!(
        store.create_schedule(&original, 10).await.unwrap(),
        ScheduleCreate::Created
    );
    let stored = store.get_schedule(&original.id).await.unwrap().unwrap();
    assert_eq!(stored, original, "read back whole");
    let mut paused = stored.clone();
    paused.paused = true;
    paused.next_fire_at = None;
    assert!(store.replace_schedule(&paused, 1).await.unwrap());
    let mut stale = stored.clone();
    stale.name = Some("lost".into());
    assert!(
        !store.replace_schedule(&stale, 1).await.unwrap(),
        "written at version 1 already"
    );
    let mut stolen = paused.clone();
    stolen.owner = "someone-else".into();
    assert!(
        !store.replace_schedule(&stolen, 2).await.unwrap(),
        "another owner cannot take it"
    );
    let now_stored = store.get_schedule(&original.id).await.unwrap().unwrap();
    assert_eq!(
        (now_stored.version, now_stored.paused, now_stored.name.as_deref()),
        (2, true, Some("contract"))
    );
    assert!(store.get_schedule(&new_schedule_id()).await.unwrap().is_none());
}

pub(crate) async fn schedules_page_oldest_first_for_their_owner_only(store: &dyn JobStore) {
    let owner = format!("contract-{}", uuid::Uuid::new_v4());
    let now = now_ms();
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = schedule(&owner, now + i * 10, None);
        store.create_schedule(&s, 10).await.unwrap();
        ids.push(s.id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_schedules(&owner, 2, cursor.as_deref()).await.unwrap();
        seen.extend(page.schedules.iter().map(|s| s.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids, "oldest first, each once");
    let first = store.list_schedules(&owner, 2, None).await.unwrap();
    let theirs = store
        .list_schedules("someone-else", 2, first.next_cursor.as_deref())
        .await;
    assert!(matches!(theirs, Err(StoreError::InvalidCursor)), "{theirs:?}");
    // Schedules are not jobs: they are not in the owner's job listing.
    assert!(store
        .list_by_owner(&owner, None, 50, None)
        .await
        .unwrap()
        .jobs
        .is_empty());
}

pub(crate) async fn a_schedule_is_due_from_its_next_tick_less_the_look_ahead_and_never_while_paused(
    store: &dyn JobStore,
) {
    let owner = format!("contract-{}", uuid::Uuid::new_v4());
    let now = now_ms();
    let mut allow = schedule(&owner, now, Some(now + 10_000_000));
    allow.overlap = Overlap::Allow;
    let skip = schedule(&owner, now, Some(now + 10_000_000));
    let mut paused = schedule(&owner, now, None);
    paused.paused = true;
    for s in [&allow, &skip, &paused] {
        store.create_schedule(s, 10).await.unwrap();
    }
    let ids = [allow.id.clone(), skip.id.clone(), paused.id.clone()];
    let due_at = |at: i64| {
        let ids = ids.clone();
        async move {
            let due = store.due_schedules(at, 1000).await.unwrap();
            ids.map(|id| due.contains(&id))
        }
    };
    assert_eq!(
        due_at(now + 10_000_000 - TICK_LOOKAHEAD_MS - 1).await,
        [false, false, false]
    );
    assert_eq!(due_at(now + 10_000_000 - TICK_LOOKAHEAD_MS).await, [true, false, false]);
    assert_eq!(due_at(now + 10_000_000).await, [true, true, false]);
    // Overdue jobs and due schedules never mix.
    let overdue = store.overdue(now + 10_000_000, 1000).await.unwrap();
    assert!(overdue.iter().all(|id| !id.as_str().starts_with("sch_")));
}
