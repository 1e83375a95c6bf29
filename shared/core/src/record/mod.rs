//! The job record and its state machine.
//!
//! A job is one item in the jobs table; the queue only carries its id. States:
//! `QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED`, `RUNNING → QUEUED`
//! (retry or continuation), any non-terminal state → `DEAD_LETTERED` or
//! `CANCELLED`. Terminal states never change.

mod callback;
mod chain_link;
mod id;
mod json;
mod run;
#[cfg(test)]
mod tests;

pub use callback::Callback;
pub use chain_link::{ChainLink, CHAIN_ID_SCHEME};
pub use id::JobId;
pub use json::{canonical_json, hash_json};
pub use run::{Finish, Lease, ProgressUpdate, ResultObject};

use serde_json::Value;

pub use longrun_types::{codes, shorten, JobError, JobStatus, Priority, MAX_ERROR_MESSAGE_BYTES, TRUNCATION_MARKER};

/// How many times [`JobRecord::resend_wait_ms`] doubles at most.
pub const MAX_RESEND_DOUBLINGS: u32 = 6;

/// The job record: one item in the jobs table, the single truth about a job.
/// Times are epoch milliseconds except `expires_at` (epoch seconds, the TTL).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// The partition key `pk`.
    pub id: JobId,
    /// The caller who submitted it (the token's `sub`, as `longrun_lambda::apigw::caller` reads it); no one
    /// else sees the job.
    pub owner: String,
    /// The job type: which registered handler runs it.
    pub job_type: String,
    /// Logical queue name (`fast`, `slow`, `urgent`, `bulk`), not a URL.
    pub queue: String,
    /// How urgent the job is; it chose `queue`.
    pub priority: Priority,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// The input as submitted, inline JSON.
    pub input: Value,
    /// SHA-256 over the canonical request; tells an idempotent replay from a
    /// reuse of the key with another body.
    pub request_hash: String,
    /// Attempts started so far: a claim of a queued job starts one, unless
    /// the job waits to continue a run ([`continuing`](Self::continuing)),
    /// and a takeover of a crashed run is not a new attempt but a
    /// [`takeovers`](Self::takeovers); reset to 0 by a redrive.
    /// `max_attempts` bounds it for retryable errors.
    pub attempts: u32,
    /// How many attempts retryable errors may use before the job ends FAILED.
    pub max_attempts: u32,
    /// The job's deadline in seconds, counted from its first start.
    pub timeout_seconds: u32,
    /// The token of the worker holding the job ([`Lease::token`]; the item keeps it as `lease_owner`); set only while RUNNING.
    pub lease_token: Option<String>,
    /// When that lease lapses unless a heartbeat extends it; set only while RUNNING.
    pub lease_expires_at: Option<i64>,
    /// The lease token of the run whose end (terminal, or back to the queue)
    /// was written last: a run that sends its end again, because the answer
    /// to the first send was lost, finds its own end applied
    /// ([`JobRecord::ended_by_run`]) rather than a lost lease.
    pub ended_by: Option<String>,
    /// Percent done, 0–100; 100 once SUCCEEDED.
    pub progress: u8,
    /// The latest progress message; cleared on success.
    pub progress_message: Option<String>,
    /// State the handler saved to resume from; kept across continuations and retries.
    pub checkpoint: Option<Value>,
    /// The objects the job wrote; set when it SUCCEEDED, empty before.
    pub results: Vec<ResultObject>,
    /// The last error: why the job ended FAILED or DEAD_LETTERED, or what a
    /// pending retry follows; cleared on success.
    pub error: Option<JobError>,
    /// Whether the owner asked to cancel; a running job stops at its next
    /// progress write or heartbeat.
    pub cancel_requested: bool,
    /// Submit time; the owner's listing is ordered by it.
    pub created_at: i64,
    /// The last change of status, progress or cancel request (heartbeats do not count).
    pub updated_at: i64,
    /// The first claim, kept across later runs; the job's deadline counts from it.
    pub started_at: Option<i64>,
    /// When the job reached a terminal state.
    pub finished_at: Option<i64>,
    /// Not before this time (delayed start, retry backoff).
    pub run_at: Option<i64>,
    /// Set while non-terminal: by then something must have happened to the job.
    pub due_at: Option<i64>,
    /// TTL in epoch seconds: after it the record (and with it the idempotency
    /// key) may be deleted, and a submit may reuse the id. Set at submit and
    /// again when the job ends.
    pub expires_at: i64,
    /// Write counter: 1 at creation, one more with every write.
    pub version: u64,
    /// Runs in a row that ran out of invocation time without saving a
    /// checkpoint (a job making no progress across continuations); a run
    /// that saves one starts the count again, and `MAX_STALLED_RUNS` ends it.
    pub stalled_runs: u32,
    /// Queued to continue the current attempt (its run gave back its
    /// invocation with a checkpoint): the next claim is no new attempt.
    pub continuing: bool,
    /// Claims that took the job over from a run whose lease had expired
    /// (its worker crashed, froze or lost touch with the store). They do
    /// not use up `max_attempts`; `attempts + takeovers` is bounded by
    /// `MAX_CLAIMS`. Reset to 0 by a redrive.
    pub takeovers: u32,
    /// The job's generation: how many times an operator redrove it out of
    /// DEAD_LETTERED (stored as the item's `redrives` attribute). Every queue message carries the generation it was
    /// sent in ([`JobMessage::generation`](crate::ports::JobMessage)), so a
    /// dead letter from before a redrive cannot end the redriven job.
    pub generation: u32,
    /// Messages the reconciler (or a replayed submit) sent for the job since
    /// a worker last claimed it. Each one doubles the wait before the next
    /// ([`JobRecord::resend_wait_ms`]), so a backlog gets a bounded number
    /// of duplicates while a lost message is still recovered.
    pub resends: u32,
    /// The webhook its end is announced to, if the submit gave one.
    pub callback: Option<Callback>,
    /// Its place in a chain of jobs (`then`), if it is in one.
    pub chain: Option<ChainLink>,
    /// The limit key it runs under ([`crate::limits`]), if any: its job
    /// type's limit or the submit's, resolved for its owner.
    pub limit: Option<String>,
    /// The schedule tick that submitted it, if one did.
    pub schedule: Option<ScheduleTick>,
}

/// The tick of a recurring schedule that submitted a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleTick {
    /// The schedule's id.
    pub schedule_id: String,
    /// The tick's time, epoch ms.
    pub tick_at: i64,
}

/// What a new job needs; the rest of the record starts from defaults.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Random, or derived from the owner's idempotency key.
    pub id: JobId,
    /// The submitting caller.
    pub owner: String,
    /// Which registered handler runs the job.
    pub job_type: String,
    /// Logical queue name (`fast`, `slow`, `urgent`, `bulk`).
    pub queue: String,
    /// How urgent the job is.
    pub priority: Priority,
    /// The validated input, inline JSON.
    pub input: Value,
    /// SHA-256 over the canonical request ([`JobRecord::request_hash`]).
    pub request_hash: String,
    /// Attempts retryable errors may use.
    pub max_attempts: u32,
    /// The job's deadline in seconds, counted from its first start.
    pub timeout_seconds: u32,
    /// Seconds after submit before the job may start (sets `run_at`); 0 starts at once.
    pub delay_seconds: u32,
    /// The webhook its end is announced to.
    pub callback: Option<Callback>,
    /// Its place in a chain, when submitted with `then` (or created as a step).
    pub chain: Option<ChainLink>,
    /// The limit key it runs under ([`JobRecord::limit`]).
    pub limit: Option<String>,
    /// The schedule tick that submitted it ([`JobRecord::schedule`]).
    pub schedule: Option<ScheduleTick>,
    /// When it may start, epoch ms, if the submit named a time (`run_at`);
    /// otherwise `delay_seconds` after submit.
    pub run_at: Option<i64>,
}

impl JobRecord {
    /// A freshly submitted job. `enqueue_grace_ms` is how long the queue has
    /// to hand it to a worker before the job counts as overdue.
    pub fn new_queued(new: NewJob, now_ms: i64, retention_seconds: i64, enqueue_grace_ms: i64) -> Self {
        let run_at = new
            .run_at
            .or_else(|| (new.delay_seconds > 0).then(|| now_ms + i64::from(new.delay_seconds) * 1000));
        JobRecord {
            id: new.id,
            owner: new.owner,
            job_type: new.job_type,
            queue: new.queue,
            priority: new.priority,
            status: JobStatus::Queued,
            input: new.input,
            request_hash: new.request_hash,
            attempts: 0,
            max_attempts: new.max_attempts,
            timeout_seconds: new.timeout_seconds,
            lease_token: None,
            lease_expires_at: None,
            ended_by: None,
            progress: 0,
            progress_message: None,
            checkpoint: None,
            results: Vec::new(),
            error: None,
            cancel_requested: false,
            created_at: now_ms,
            updated_at: now_ms,
            started_at: None,
            finished_at: None,
            run_at,
            due_at: Some(run_at.unwrap_or(now_ms) + enqueue_grace_ms),
            expires_at: now_ms / 1000 + retention_seconds,
            version: 1,
            stalled_runs: 0,
            continuing: false,
            takeovers: 0,
            generation: 0,
            resends: 0,
            callback: new.callback,
            chain: new.chain,
            limit: new.limit,
            schedule: new.schedule,
        }
    }

    /// Whether this record is the end `finish` writes, written by the run
    /// holding `lease_token`: the end a run sent again after losing the
    /// answer to its first send, already applied.
    pub fn ended_by_run(&self, lease_token: &str, finish: &Finish) -> bool {
        self.ended_by.as_deref() == Some(lease_token) && self.status == finish.status() && self.lease_token.is_none()
    }

    /// Whether this record is the end `status` written at `now_ms`: a cancel
    /// or a dead letter sent again (the same request, its answer lost) finds
    /// its own write applied. (A run's end is recognised by its token:
    /// [`ended_by_run`](Self::ended_by_run).)
    pub fn ended_as_at(&self, status: JobStatus, now_ms: i64) -> bool {
        self.status == status && self.finished_at == Some(now_ms)
    }

    /// A queued job whose start is more than `lookahead_ms` away, made at
    /// `now_ms`: no message is sent for it yet (SQS delays a message 15
    /// minutes at most), and it is due (`due_at`) when the look-ahead
    /// reaches it, for the reconciler to send it then, delayed to its start
    /// ([`wake_delay_seconds`](Self::wake_delay_seconds)).
    pub fn schedule_far(&mut self, now_ms: i64, lookahead_ms: i64) -> bool {
        match self.run_at {
            Some(run_at) if self.status == JobStatus::Queued && run_at - now_ms > lookahead_ms => {
                self.due_at = Some(run_at - lookahead_ms);
                true
            }
            _ => false,
        }
    }

    /// For a queued job whose start has not come at `now_ms`: the message
    /// delay that makes it visible at its start (rounded up to a second, so
    /// never early), at most SQS's 900 s.
    pub fn wake_delay_seconds(&self, now_ms: i64) -> Option<u32> {
        let run_at = self
            .run_at
            .filter(|r| *r > now_ms && self.status == JobStatus::Queued)?;
        Some((((run_at - now_ms) + 999) / 1000).clamp(1, 900) as u32)
    }

    /// Whether its start time has come: no `run_at` (delay, retry backoff)
    /// or one at or before `now_ms`.
    pub fn is_due_at(&self, now_ms: i64) -> bool {
        self.run_at.is_none_or(|t| t <= now_ms)
    }

    /// Whether it runs under a lease that expired before `now_ms` (its worker
    /// died or lost touch).
    pub fn lease_expired_at(&self, now_ms: i64) -> bool {
        self.status == JobStatus::Running && self.lease_expires_at.is_some_and(|t| t < now_ms)
    }

    /// Whether a worker may take this job now: queued and due, or running
    /// under a lease that has expired (a takeover) — and in both cases not
    /// asked to stop: a cancel request wins over every claim. The one home of
    /// the rule; the DynamoDB claim conditions (`aws::dynamo`) encode the
    /// same, and the contract tests hold both to it.
    pub fn claimable_at(&self, now_ms: i64) -> bool {
        !self.cancel_requested
            && match self.status {
                JobStatus::Queued => self.is_due_at(now_ms),
                JobStatus::Running => self.lease_expired_at(now_ms),
                _ => false,
            }
    }

    /// Whether no worker holds the job: queued, or running under a lease
    /// that has expired. A cancel request ends such a job CANCELLED at once
    /// (nobody is there to see it at a heartbeat). Same home and same
    /// contract as [`claimable_at`](Self::claimable_at).
    pub fn unheld_at(&self, now_ms: i64) -> bool {
        match self.status {
            JobStatus::Queued => true,
            JobStatus::Running => self.lease_expired_at(now_ms),
            _ => false,
        }
    }

    /// Whether this job must end CANCELLED now rather than run: its owner
    /// asked to cancel and no worker holds it. The worker, the reconciler
    /// and the dead-letter function all end such a job instead of running,
    /// re-sending or dead-lettering it.
    pub fn cancel_pending_at(&self, now_ms: i64) -> bool {
        self.cancel_requested && self.unheld_at(now_ms)
    }

    /// Whether the dead-letter function may end this job DEAD_LETTERED now:
    /// queued and due (not waiting out a retry backoff), or running under an
    /// expired lease (a live worker keeps its job), and not asked to cancel
    /// (a cancel request wins: such a job ends CANCELLED). This is the claim
    /// rule itself: a dead letter may end a job exactly when a worker could
    /// take it, so the two can never disagree.
    pub fn dead_letterable_at(&self, now_ms: i64) -> bool {
        self.claimable_at(now_ms)
    }

    /// How long the reconciler waits, after it sends this job again, before
    /// the next resend, when `resends` messages were re-sent before this one
    /// since the last claim: `grace_ms` after the first, doubling with every
    /// resend up to 64 × `grace_ms`. A job waiting behind a backlog thus gets
    /// at most about log2(backlog / grace) + 1 duplicates, and a truly lost
    /// message is still sent again.
    pub fn resend_wait_ms(resends: u32, grace_ms: i64) -> i64 {
        grace_ms.saturating_mul(1 << resends.min(MAX_RESEND_DOUBLINGS))
    }

    /// When the job's own deadline passes (its first start plus its timeout).
    pub fn deadline_ms(&self) -> Option<i64> {
        self.started_at.map(|t| t + i64::from(self.timeout_seconds) * 1000)
    }

    /// Whether `lease_token` holds a live claim on this job.
    pub fn is_leased_to(&self, lease_token: &str) -> bool {
        self.status == JobStatus::Running && self.lease_token.as_deref() == Some(lease_token)
    }

    /// The time a record expires (TTL) when it ends at `now_ms`.
    pub fn expiry_after(now_ms: i64, retention_seconds: i64) -> i64 {
        now_ms / 1000 + retention_seconds
    }
}
