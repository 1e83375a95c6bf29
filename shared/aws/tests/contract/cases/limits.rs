//! Contract case of per-key limits: the store changes a key's state exactly
//! once per change, under concurrent changes.

use crate::*;

use longrun_core::limits::{self, Admission, Claimant, LimitRule, LimitScope, LimitState};

pub(crate) async fn a_limit_s_slots_are_exact_under_concurrent_takers_and_go_to_the_oldest_waiter(
    store: &dyn JobStore,
) {
    let key = format!("contract|{}", uuid::Uuid::new_v4());
    let rule = LimitRule {
        concurrency: Some(3),
        rate: None,
        scope: LimitScope::Deployment,
    };
    let now = now_ms();
    let ask = |n: usize| {
        let key = key.clone();
        async move {
            let id = format!("job-{n:02}");
            let token = format!("lease-{n}");
            let who = Claimant {
                job_id: &id,
                token: &token,
                hold_until: now + 60_000,
                queue: "fast",
                generation: 0,
            };
            let change = |state: &LimitState| limits::admit(state, &who, &rule, now + n as i64).state;
            let stored = store.change_limit(&key, &change).await.unwrap();
            (
                id.clone(),
                limits::admit(&stored, &who, &rule, now + n as i64).admission,
            )
        }
    };
    let answers = tokio::join!(
        ask(0),
        ask(1),
        ask(2),
        ask(3),
        ask(4),
        ask(5),
        ask(6),
        ask(7),
        ask(8),
        ask(9)
    );
    let answers = [
        answers.0, answers.1, answers.2, answers.3, answers.4, answers.5, answers.6, answers.7, answers.8, answers.9,
    ];
    let acquired: Vec<&String> = answers
        .iter()
        .filter(|(_, a)| matches!(a, Admission::Acquired { newly: true, .. }))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(acquired.len(), 3, "{answers:?}");
    let state = store.limit_state(&key).await.unwrap();
    assert_eq!(state.holders.len(), 3);
    assert_eq!(state.waiting.len(), 7, "every refused job waits in line: {state:?}");
    let holder = acquired[0];
    let oldest = state
        .waiting
        .iter()
        .min_by_key(|(id, w)| (w.since, (*id).clone()))
        .map(|(id, _)| id.clone())
        .unwrap();
    // A release frees exactly its slot and wakes the oldest waiter.
    let token = format!("lease-{}", holder.trim_start_matches("job-").parse::<usize>().unwrap());
    let release = |state: &LimitState| limits::release(state, holder, &token, &rule, now + 100).state;
    let before = store.change_limit(&key, &release).await.unwrap();
    let woken = limits::release(&before, holder, &token, &rule, now + 100).wake;
    assert_eq!(woken.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), vec![oldest]);
    let state = store.limit_state(&key).await.unwrap();
    assert_eq!(state.holders.len(), 2);
    assert!(!state.holders.contains_key(holder.as_str()));
    assert!(store.limit_state("contract|never-used").await.unwrap() == LimitState::default());
}
