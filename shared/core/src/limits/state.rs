//! One limit key's state and the decisions over it: who holds a slot (each
//! holder until its lease ends, so a crashed holder's slot comes back with
//! its lease), when the recent starts were (for a rate), and who waits, in
//! the order they first found no room.
//!
//! A freed slot goes to the oldest waiter: a job that finds room but older
//! jobs still waiting waits too, and the decision names the waiters to wake
//! (a message sent for each at once) so the room is not left idle until
//! their delayed messages come back. A waiter whose message never comes
//! back (its job ended another way) drops out when its time runs out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::LimitRule;

/// How long a waiting job's message stays away when nothing but a freed
/// slot (which wakes it) can let it in.
pub const WAIT_POLL_MS: i64 = 30_000;
/// How long past its message's return a waiter keeps its place.
pub const WAITER_SLACK_MS: i64 = 60_000;
/// How soon one waiter is woken again.
pub const WAKE_REPEAT_MS: i64 = 10_000;
/// The most waiters one key keeps in order (its item stays far below
/// DynamoDB's 400 KB); past that, a job waits without a place.
pub const MAX_WAITERS: usize = 1_000;

/// A running job's slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The lease it runs under: only that run gives the slot back or keeps it.
    pub token: String,
    /// When the slot lapses unless extended (the lease's expiry), epoch ms.
    pub until: i64,
}

/// A job waiting for room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// When it first found no room: its place in line.
    pub since: i64,
    /// The queue its messages go to.
    pub queue: String,
    /// Its generation, for the message that wakes it.
    pub generation: u32,
    /// When it loses its place unless it comes back.
    pub until: i64,
    /// Until when it is not woken again.
    #[serde(default)]
    pub woken_until: i64,
}

/// What the store keeps under one limit key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    /// Slots by job id.
    #[serde(default)]
    pub holders: BTreeMap<String, Holder>,
    /// Start times within the rate's interval, oldest first.
    #[serde(default)]
    pub starts: Vec<i64>,
    /// Waiting jobs by id.
    #[serde(default)]
    pub waiting: BTreeMap<String, Waiter>,
}

impl LimitState {
    /// When nothing in it matters any more (the store's expiry), epoch ms.
    pub fn lapses_at(&self, rule: Option<&LimitRule>) -> i64 {
        let rate_ms = rule.and_then(|r| r.rate).map_or(0, |r| r.per_ms);
        let holders = self.holders.values().map(|h| h.until);
        let waiters = self.waiting.values().map(|w| w.until);
        let starts = self.starts.iter().map(|s| s + rate_ms);
        holders.chain(waiters).chain(starts).max().unwrap_or(0)
    }

    /// Without what lapsed by `now_ms`.
    fn pruned(&self, rule: &LimitRule, now_ms: i64) -> LimitState {
        let window_start = rule.rate.map_or(i64::MAX, |r| now_ms - r.per_ms);
        LimitState {
            holders: self
                .holders
                .iter()
                .filter(|(_, h)| h.until > now_ms)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            starts: self.starts.iter().copied().filter(|s| *s > window_start).collect(),
            waiting: self
                .waiting
                .iter()
                .filter(|(_, w)| w.until > now_ms)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Starts that may happen now: free slots and rate tokens, the fewer.
    fn room(&self, rule: &LimitRule) -> usize {
        let slots = rule
            .concurrency
            .map_or(usize::MAX, |c| (c as usize).saturating_sub(self.holders.len()));
        let tokens = rule
            .rate
            .map_or(usize::MAX, |r| (r.starts as usize).saturating_sub(self.starts.len()));
        slots.min(tokens)
    }

    /// The waiters, oldest first.
    fn in_line(&self) -> Vec<(&String, &Waiter)> {
        let mut line: Vec<_> = self.waiting.iter().collect();
        line.sort_by_key(|(id, w)| (w.since, (*id).clone()));
        line
    }

    /// Marks up to `room` of the oldest waiters (not `except`, not woken
    /// lately) woken, and names them.
    fn wake(&mut self, room: usize, except: &str, now_ms: i64) -> Vec<(String, Waiter)> {
        let chosen: Vec<String> = self
            .in_line()
            .into_iter()
            .filter(|(id, _)| id.as_str() != except)
            .take(room)
            .filter(|(_, w)| w.woken_until <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        chosen
            .into_iter()
            .filter_map(|id| {
                let waiter = self.waiting.get_mut(&id)?;
                waiter.woken_until = now_ms + WAKE_REPEAT_MS;
                Some((id, waiter.clone()))
            })
            .collect()
    }
}

/// The job asking for a slot.
#[derive(Clone, Copy, Debug)]
pub struct Claimant<'a> {
    /// Its id.
    pub job_id: &'a str,
    /// The lease it is about to claim with.
    pub token: &'a str,
    /// Until when the slot holds (the lease's expiry).
    pub hold_until: i64,
    /// Its queue (where a wake-up is sent).
    pub queue: &'a str,
    /// Its generation.
    pub generation: u32,
}

/// What asking for a slot came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The job may run. `newly` when this call took the slot; not when the
    /// job already held one (a duplicate message of a running job, or of
    /// one whose run crashed: `ours` tells whether it was this lease's).
    Acquired {
        /// This call took the slot.
        newly: bool,
        /// The slot is under this claimant's lease.
        ours: bool,
    },
    /// No room: try again after `retry_after_ms` (sooner if woken).
    Wait {
        /// When its message should come back, from now.
        retry_after_ms: i64,
    },
}

/// A decision: the admission, the state to store, and the waiters to wake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What the claimant gets.
    pub admission: Admission,
    /// The state to write back.
    pub state: LimitState,
    /// Waiters to send a message for now.
    pub wake: Vec<(String, Waiter)>,
}

/// Whether `who` may start now under `rule`, over the stored `state`.
pub fn admit(state: &LimitState, who: &Claimant<'_>, rule: &LimitRule, now_ms: i64) -> Decision {
    let mut state = state.pruned(rule, now_ms);
    if let Some(holder) = state.holders.get(who.job_id) {
        let ours = holder.token == who.token;
        return Decision {
            admission: Admission::Acquired { newly: false, ours },
            state,
            wake: Vec::new(),
        };
    }
    let room = state.room(rule);
    let since = state.waiting.get(who.job_id).map_or(now_ms, |w| w.since);
    let ahead = state
        .in_line()
        .into_iter()
        .filter(|(id, w)| (w.since, id.as_str()) < (since, who.job_id))
        .count();
    if room > ahead {
        state.waiting.remove(who.job_id);
        let wake = state.wake(ahead, who.job_id, now_ms);
        state.holders.insert(
            who.job_id.to_owned(),
            Holder {
                token: who.token.to_owned(),
                until: who.hold_until,
            },
        );
        if rule.rate.is_some() {
            state.starts.push(now_ms);
        }
        return Decision {
            admission: Admission::Acquired {
                newly: true,
                ours: true,
            },
            state,
            wake,
        };
    }
    // No room for it: the room there is goes to those ahead of it.
    let wake = state.wake(room, who.job_id, now_ms);
    let token_back = rule
        .rate
        .filter(|r| state.starts.len() >= r.starts as usize)
        .and_then(|r| state.starts.first().map(|first| first + r.per_ms - now_ms));
    let retry_after_ms = token_back.map_or(WAIT_POLL_MS, |t| t.clamp(1_000, WAIT_POLL_MS));
    let placed = state.waiting.contains_key(who.job_id) || state.waiting.len() < MAX_WAITERS;
    if placed {
        let woken_until = state.waiting.get(who.job_id).map_or(0, |w| w.woken_until);
        state.waiting.insert(
            who.job_id.to_owned(),
            Waiter {
                since,
                queue: who.queue.to_owned(),
                generation: who.generation,
                until: now_ms + retry_after_ms + WAITER_SLACK_MS,
                woken_until,
            },
        );
    }
    Decision {
        admission: Admission::Wait { retry_after_ms },
        state,
        wake,
    }
}

/// Gives back `job_id`'s slot if lease `token` holds it, and names the
/// waiters the freed room goes to.
pub fn release(state: &LimitState, job_id: &str, token: &str, rule: &LimitRule, now_ms: i64) -> Decision {
    let mut state = state.pruned(rule, now_ms);
    if state.holders.get(job_id).is_some_and(|h| h.token == token) {
        state.holders.remove(job_id);
    }
    let room = state.room(rule);
    let wake = state.wake(room, job_id, now_ms);
    Decision {
        admission: Admission::Wait { retry_after_ms: 0 },
        state,
        wake,
    }
}

/// Takes `job_id` out of the waiting line (its message turned out to be a
/// stale one: the job ended, runs, or is not due).
pub fn forget(state: &LimitState, job_id: &str) -> LimitState {
    let mut state = state.clone();
    state.waiting.remove(job_id);
    state
}

/// Keeps `job_id`'s slot until `until` for lease `token`, taking it over
/// from another lease of the same job (one that crashed: the caller holds
/// the job's lease now). `None` when the job holds no live slot at
/// `now_ms` (it lapsed and may be someone else's room now).
pub fn extend(state: &LimitState, job_id: &str, token: &str, until: i64, now_ms: i64) -> Option<LimitState> {
    let mut state = state.clone();
    let holder = state.holders.get_mut(job_id).filter(|h| h.until > now_ms)?;
    holder.token = token.to_owned();
    holder.until = holder.until.max(until);
    Some(state)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
