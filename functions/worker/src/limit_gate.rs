//! The worker's side of per-key limits ([`longrun_core::limits`]): a job
//! whose message names a limit key takes a slot before its claim ([`enter`]),
//! keeps it with every heartbeat ([`keep`]) and gives it back when its run
//! ends ([`leave`]). A job that finds no room is passed on, delayed, by the
//! caller: no claim was made, so no attempt and no receive is spent. The
//! waiters a decision names are woken with a fresh message each.
//!
//! Every slot is held under the run's lease token and lapses with the lease,
//! so a crashed run's slot comes back when its lease would have; a release
//! or an extension under another lease's token changes nothing.

use longrun_core::limits::{self, Admission, Claimant, LimitRule, LimitState, Waiter};
use longrun_core::ports::{JobMessage, StoreError};
use longrun_core::record::Lease;
use longrun_core::JobId;

use crate::WorkerDeps;

/// A slot taken for a run.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    /// The limit key.
    pub key: String,
    rule: LimitRule,
    /// This call took it (a failed claim gives it back).
    pub newly: bool,
    /// It is under this run's lease (not: a crashed run's, adopted once
    /// the claim succeeds).
    pub ours: bool,
}

/// What the limit says about running the job now.
#[derive(Debug)]
pub(crate) enum Gate {
    /// The job names no limit (or one this deployment no longer configures).
    Open,
    /// A slot is held.
    Held(Slot),
    /// No room: pass the message on, delayed this many seconds.
    Wait(u32),
}

/// Takes a slot of `message`'s limit for the run about to claim with `lease`.
pub(crate) async fn enter(
    deps: &WorkerDeps,
    message: &JobMessage,
    lease: &Lease,
    queue: &str,
    now_ms: i64,
) -> Result<Gate, StoreError> {
    let Some(key) = message.limit.as_deref() else {
        return Ok(Gate::Open);
    };
    let Some(rule) = deps.config.limits.get(limits::name_of(key)).copied() else {
        tracing::warn!(limit = %key, "the job's limit is not configured (any more); running it unlimited");
        return Ok(Gate::Open);
    };
    let job_id = message.job_id.to_string();
    let who = Claimant {
        job_id: &job_id,
        token: &lease.token,
        hold_until: lease.expires_at,
        queue,
        generation: message.generation,
    };
    let change = |state: &LimitState| limits::admit(state, &who, &rule, now_ms).state;
    let stored = deps.store.change_limit(key, &change).await?;
    let decision = limits::admit(&stored, &who, &rule, now_ms);
    wake(deps, key, &decision.wake, now_ms).await;
    Ok(match decision.admission {
        Admission::Acquired { newly, ours } => Gate::Held(Slot {
            key: key.to_owned(),
            rule,
            newly,
            ours,
        }),
        Admission::Wait { retry_after_ms } => {
            let seconds = ((retry_after_ms + 999) / 1000).max(1) as u32;
            tracing::info!(limit = %key, wait_seconds = seconds, "no room under the job's limit; it waits");
            longrun_core::metrics::limit_wait(limits::name_of(key));
            Gate::Wait(seconds)
        }
    })
}

/// Keeps `slot` for job `id` until `until` under `lease_token` (taking it
/// over from a crashed run of the same job); `false` when the job holds no
/// live slot any more, or the store could not be reached.
pub(crate) async fn keep(deps: &WorkerDeps, key: &str, id: &JobId, lease_token: &str, until: i64, now_ms: i64) -> bool {
    let job_id = id.to_string();
    let change = |state: &LimitState| {
        limits::extend(state, &job_id, lease_token, until, now_ms).unwrap_or_else(|| state.clone())
    };
    match deps.store.change_limit(key, &change).await {
        Ok(stored) => limits::extend(&stored, &job_id, lease_token, until, now_ms).is_some(),
        Err(err) => {
            tracing::warn!(limit = %key, error = %err, "could not keep the limit's slot");
            false
        }
    }
}

/// Gives back job `id`'s slot of `slot` held under `lease_token`, and wakes
/// the waiters the room goes to. A failure leaves the slot to lapse with
/// the lease.
pub(crate) async fn leave(deps: &WorkerDeps, slot: &Slot, id: &JobId, lease_token: &str, now_ms: i64) {
    let job_id = id.to_string();
    let change = |state: &LimitState| limits::release(state, &job_id, lease_token, &slot.rule, now_ms).state;
    match deps.store.change_limit(&slot.key, &change).await {
        Ok(stored) => {
            let decision = limits::release(&stored, &job_id, lease_token, &slot.rule, now_ms);
            wake(deps, &slot.key, &decision.wake, now_ms).await;
        }
        Err(err) => {
            tracing::warn!(limit = %slot.key, error = %err, "could not give the limit's slot back; it lapses with the lease");
        }
    }
}

/// Takes job `id` out of `key`'s waiting line: its message was a stale one.
/// A failure leaves the place to lapse (or to a wake-up that finds the job
/// not waiting).
pub(crate) async fn forget(deps: &WorkerDeps, key: &str, id: &JobId) {
    let job_id = id.to_string();
    let change = |state: &LimitState| limits::forget(state, &job_id);
    if let Err(err) = deps.store.change_limit(key, &change).await {
        tracing::warn!(limit = %key, error = %err, "could not take a stale message's job out of the waiting line");
    }
}

/// Sends each waiter a fresh message, so a freed slot is taken at once. A
/// waiter whose wake-up is lost still comes back with its own delayed
/// message.
async fn wake(deps: &WorkerDeps, key: &str, waiters: &[(String, Waiter)], now_ms: i64) {
    for (id, waiter) in waiters {
        let Some(job_id) = JobId::parse(id) else { continue };
        let message = JobMessage {
            job_id,
            enqueued_at: now_ms,
            generation: waiter.generation,
            limit: Some(key.to_owned()),
        };
        if let Err(err) = deps.queue.enqueue(&waiter.queue, &message, 0).await {
            tracing::warn!(limit = %key, job_id = %id, error = %err, "could not wake a waiting job; its own message brings it back");
        }
    }
}
