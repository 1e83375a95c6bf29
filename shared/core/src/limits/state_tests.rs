use super::*;
use crate::limits::{LimitScope, Rate};

const NOW: i64 = 10_000_000;

fn rule(concurrency: Option<u32>, rate: Option<(u32, i64)>) -> LimitRule {
    LimitRule {
        concurrency,
        rate: rate.map(|(starts, per_ms)| Rate { starts, per_ms }),
        scope: LimitScope::Deployment,
    }
}

fn who(job_id: &str) -> Claimant<'_> {
    Claimant {
        job_id,
        token: "t-new",
        hold_until: NOW + 60_000,
        queue: "fast",
        generation: 0,
    }
}

fn holding(ids: &[(&str, i64)]) -> LimitState {
    LimitState {
        holders: ids
            .iter()
            .map(|(id, until)| {
                (
                    (*id).to_owned(),
                    Holder {
                        token: format!("t-{id}"),
                        until: *until,
                    },
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn waiting(mut state: LimitState, ids: &[(&str, i64)]) -> LimitState {
    for (id, since) in ids {
        state.waiting.insert(
            (*id).to_owned(),
            Waiter {
                since: *since,
                queue: "fast".into(),
                generation: 0,
                until: NOW + 60_000,
                woken_until: 0,
            },
        );
    }
    state
}

fn woken(decision: &Decision) -> Vec<&str> {
    decision.wake.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn a_slot_is_taken_while_there_is_room_and_the_oldest_waiter_goes_first() {
    let later = NOW + 1;
    let two = rule(Some(2), None);
    // (stored state, the job asking, acquired, woken)
    let table: Vec<(LimitState, &str, bool, Vec<&str>)> = vec![
        (LimitState::default(), "j", true, vec![]),
        (holding(&[("a", later)]), "j", true, vec![]),
        (holding(&[("a", later), ("b", later)]), "j", false, vec![]),
        // A lapsed holder (its run crashed) gives its slot back.
        (holding(&[("a", later), ("b", NOW)]), "j", true, vec![]),
        // Room for one, an older waiter: it gets the room and is woken.
        (
            waiting(holding(&[("a", later)]), &[("old", NOW - 5)]),
            "j",
            false,
            vec!["old"],
        ),
        // Room for two, one older waiter: both go.
        (
            waiting(LimitState::default(), &[("old", NOW - 5)]),
            "j",
            true,
            vec!["old"],
        ),
        // The asker is the oldest waiter: it goes first.
        (
            waiting(holding(&[("a", later)]), &[("j", NOW - 9), ("young", NOW - 5)]),
            "j",
            true,
            vec![],
        ),
    ];
    for (i, (state, id, acquired, wake)) in table.into_iter().enumerate() {
        let decision = admit(&state, &who(id), &two, NOW);
        let got = matches!(
            decision.admission,
            Admission::Acquired {
                newly: true,
                ours: true
            }
        );
        assert_eq!((got, woken(&decision)), (acquired, wake), "case {i}: {decision:?}");
        assert_eq!(decision.state.holders.contains_key(id), acquired, "case {i}");
        assert_eq!(
            decision.state.waiting.contains_key(id),
            !acquired,
            "case {i}: a refused job waits"
        );
        assert!(decision.state.holders.len() <= 2, "case {i}");
    }
}

#[test]
fn a_job_already_holding_its_slot_is_told_whose_lease_it_is() {
    let state = holding(&[("j", NOW + 5)]);
    let decision = admit(&state, &who("j"), &rule(Some(1), None), NOW);
    assert_eq!(
        decision.admission,
        Admission::Acquired {
            newly: false,
            ours: false
        }
    );
    assert_eq!(decision.state, state, "nothing changes");
    let mine = Claimant {
        token: "t-j",
        ..who("j")
    };
    assert_eq!(
        admit(&state, &mine, &rule(Some(1), None), NOW).admission,
        Admission::Acquired {
            newly: false,
            ours: true
        }
    );
}

#[test]
fn a_rate_counts_starts_in_its_window_and_says_when_the_next_one_frees() {
    let rate = rule(None, Some((2, 1_000)));
    let started = |times: &[i64]| LimitState {
        starts: times.to_vec(),
        ..Default::default()
    };
    // (starts, acquired, retry after)
    let table = [
        (started(&[]), true, None),
        (started(&[NOW - 100]), true, None),
        (started(&[NOW - 900, NOW - 100]), false, Some(1_000)),
        (started(&[NOW - 1_000, NOW - 100]), true, None),
    ];
    for (i, (state, acquired, retry)) in table.into_iter().enumerate() {
        let decision = admit(&state, &who("j"), &rate, NOW);
        match decision.admission {
            Admission::Acquired { .. } => {
                assert!(acquired, "case {i}");
                assert_eq!(decision.state.starts.last(), Some(&NOW), "case {i}");
                assert!(decision.state.starts.len() <= 2, "case {i}");
            }
            Admission::Wait { retry_after_ms } => {
                assert!(!acquired, "case {i}");
                assert_eq!(
                    Some(retry_after_ms),
                    retry,
                    "case {i}: the oldest start leaves the window then (at least 1 s)"
                );
            }
        }
    }
    // Without a rate, a full semaphore waits its poll interval.
    let full = admit(&holding(&[("a", NOW + 5)]), &who("j"), &rule(Some(1), None), NOW);
    assert_eq!(
        full.admission,
        Admission::Wait {
            retry_after_ms: WAIT_POLL_MS
        }
    );
}

#[test]
fn a_waiter_keeps_its_place_when_it_comes_back_and_loses_it_once_its_time_is_out() {
    let one = rule(Some(1), None);
    let full = holding(&[("a", NOW + 100_000)]);
    let first = admit(&full, &who("j"), &one, NOW - 20_000);
    let since = first.state.waiting["j"].since;
    assert_eq!(since, NOW - 20_000);
    let again = admit(&first.state, &who("j"), &one, NOW);
    assert_eq!(again.state.waiting["j"].since, since, "same place in line");
    let expired = waiting(full, &[("gone", NOW - 50_000)]);
    let mut expired = expired.clone();
    expired.waiting.get_mut("gone").unwrap().until = NOW;
    let decision = admit(&expired, &who("j"), &one, NOW);
    assert!(!decision.state.waiting.contains_key("gone"));
}

#[test]
fn a_release_frees_the_slot_only_for_its_own_lease_and_wakes_the_oldest_once() {
    let one = rule(Some(1), None);
    let state = waiting(holding(&[("a", NOW + 5)]), &[("young", NOW - 1), ("old", NOW - 9)]);
    let stale = release(&state, "a", "t-other", &one, NOW);
    assert!(
        stale.state.holders.contains_key("a"),
        "another lease's release is a no-op"
    );
    assert!(stale.wake.is_empty());
    let freed = release(&state, "a", "t-a", &one, NOW);
    assert!(freed.state.holders.is_empty());
    assert_eq!(woken(&freed), vec!["old"]);
    // Woken lately: not woken again by the next release.
    let again = release(&freed.state, "b", "t-b", &one, NOW + 1);
    assert_eq!(woken(&again), Vec::<&str>::new());
    let later = release(&freed.state, "b", "t-b", &one, NOW + WAKE_REPEAT_MS);
    assert_eq!(woken(&later), vec!["old"]);
}

#[test]
fn an_extension_keeps_a_live_slot_under_the_caller_s_lease_and_not_a_lapsed_one() {
    let state = holding(&[("a", NOW + 5)]);
    let kept = extend(&state, "a", "t-mine", NOW + 60_000, NOW).unwrap();
    assert_eq!(
        kept.holders["a"],
        Holder {
            token: "t-mine".into(),
            until: NOW + 60_000
        }
    );
    assert_eq!(extend(&state, "a", "t-mine", NOW + 60_000, NOW + 5), None, "lapsed");
    assert_eq!(extend(&state, "b", "t-mine", NOW + 60_000, NOW), None, "never held");
}

#[test]
fn the_waiting_line_is_bounded_and_the_state_lapses_with_its_last_entry() {
    let one = rule(Some(1), Some((5, 60_000)));
    let mut state = holding(&[("a", NOW + 5)]);
    for i in 0..MAX_WAITERS {
        state.waiting.insert(
            format!("w{i}"),
            Waiter {
                since: NOW - 1,
                queue: "fast".into(),
                generation: 0,
                until: NOW + 10,
                woken_until: NOW + 10,
            },
        );
    }
    let decision = admit(&state, &who("j"), &one, NOW);
    assert!(matches!(decision.admission, Admission::Wait { .. }));
    assert_eq!(decision.state.waiting.len(), MAX_WAITERS, "no place past the bound");
    let lapse = LimitState {
        starts: vec![NOW],
        ..holding(&[("a", NOW + 5)])
    };
    assert_eq!(lapse.lapses_at(Some(&one)), NOW + 60_000);
}
