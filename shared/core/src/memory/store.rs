//! [`MemoryJobStore`]: job records in a map, under the same conditional
//! rules as the DynamoDB store. Which jobs may be claimed or dead-lettered is
//! decided by [`JobRecord::claimable_at`] and [`JobRecord::dead_letterable_at`],
//! the one home of those rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::list_cursor;
use crate::ports::{
    CancelOutcome, ClaimOutcome, CreateOutcome, JobLifecycle, JobPage, ProgressAck, StoreError, StreamTicket,
    Transition,
};
use crate::record::{Callback, Finish, JobError, JobId, JobRecord, JobStatus, Lease, ProgressUpdate};
use crate::webhook::WebhookSecrets;

/// Job records in a map, with a switch to make every call fail.
pub struct MemoryJobStore {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
    unavailable: AtomicBool,
    hanging_heartbeats: AtomicBool,
    /// How many of the next ends written lose their answer.
    finish_answers_to_lose: AtomicU32,
    /// How many records `get` has read.
    gets: AtomicU64,
    retention_seconds: i64,
    /// Each owner's set of active jobs (quotas).
    pub(super) slots: Mutex<HashMap<String, BTreeMap<JobId, i64>>>,
    /// Whether ending a job releases its slot.
    owner_quotas: bool,
    /// Each owner's webhook secrets.
    pub(super) secrets: Mutex<HashMap<String, WebhookSecrets>>,
    /// Stream tickets by token hash.
    pub(super) tickets: Mutex<HashMap<String, StreamTicket>>,
    /// Counts per (owner, counter, window start).
    pub(super) window_counts: Mutex<HashMap<(String, String, i64), u32>>,
    /// Each owner's open event streams.
    pub(super) streams: Mutex<HashMap<String, crate::streams::OpenStreams>>,
    /// Each limit key's state.
    pub(super) limits: Mutex<HashMap<String, crate::limits::LimitState>>,
    /// Schedules by id.
    pub(super) schedules: Mutex<super::schedules::Schedules>,
}

/// The retention of [`MemoryJobStore::new`]: `JOB_RETENTION_DAYS`' default of 7 days.
pub const DEFAULT_RETENTION_SECONDS: i64 = 7 * 86_400;

impl Default for MemoryJobStore {
    fn default() -> Self {
        Self::with_retention(DEFAULT_RETENTION_SECONDS)
    }
}

impl MemoryJobStore {
    /// An empty, reachable store whose records live 7 days after they end.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty, reachable store whose records live `retention_seconds` after they end.
    pub fn with_retention(retention_seconds: i64) -> Self {
        MemoryJobStore {
            jobs: Mutex::default(),
            unavailable: AtomicBool::default(),
            hanging_heartbeats: AtomicBool::default(),
            finish_answers_to_lose: AtomicU32::default(),
            gets: AtomicU64::default(),
            retention_seconds,
            slots: Mutex::default(),
            owner_quotas: false,
            secrets: Mutex::default(),
            tickets: Mutex::default(),
            window_counts: Mutex::default(),
            streams: Mutex::default(),
            limits: Mutex::default(),
            schedules: Mutex::default(),
        }
    }

    /// The same store, releasing a job's quota slot whenever the job ends.
    pub fn with_owner_quotas(mut self) -> Self {
        self.owner_quotas = true;
        self
    }

    /// Releases the slot of a job that just ended, when quotas are on.
    fn ended(&self, job: &JobRecord) {
        crate::metrics::ended(job, job.status);
        if self.owner_quotas && job.status.is_terminal() {
            if let Some(set) = self.slots.lock().unwrap().get_mut(&job.owner) {
                set.remove(&job.id);
            }
        }
    }

    /// Overwrites a record unconditionally (test set-up only).
    pub fn insert(&self, job: JobRecord) {
        self.jobs.lock().unwrap().insert(job.id.clone(), job);
    }

    /// How many records the store holds.
    pub fn len(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every call fail as if DynamoDB were unreachable (or recover).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// How many reads of one record (`get`) the store has answered: what a
    /// GetItem costs, for tests that bound reads.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// Makes the next `count` ends (`finish`) apply and then answer a store
    /// fault, as a write whose answer was lost on the way back.
    pub fn lose_finish_answers(&self, count: u32) {
        self.finish_answers_to_lose.store(count, Ordering::SeqCst);
    }

    /// Makes every lease extension hang for ever, as a request to a store
    /// that accepts the connection and never answers (or answer again).
    pub fn set_heartbeats_hang(&self, hang: bool) {
        self.hanging_heartbeats.store(hang, Ordering::SeqCst);
    }

    /// The records, after checking the store is "reachable".
    pub(super) fn jobs(&self) -> Result<std::sync::MutexGuard<'_, HashMap<JobId, JobRecord>>, StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected: the store is down".into()));
        }
        Ok(self.jobs.lock().unwrap())
    }
}

#[async_trait]
impl JobLifecycle for MemoryJobStore {
    async fn create(&self, job: &JobRecord, now_ms: i64) -> Result<CreateOutcome, StoreError> {
        let mut jobs = self.jobs()?;
        if let Some(existing) = jobs.get(&job.id) {
            if existing.expires_at >= now_ms / 1000 {
                return Ok(CreateOutcome::Exists(Box::new(existing.clone())));
            }
        }
        jobs.insert(job.id.clone(), job.clone());
        Ok(CreateOutcome::Created)
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.jobs()?.get(id).cloned())
    }

    async fn claim(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ClaimOutcome, StoreError> {
        let mut jobs = self.jobs()?;
        let Some(job) = jobs.get_mut(id) else {
            return Ok(ClaimOutcome::NotFound);
        };
        if !job.claimable_at(now_ms) {
            return Ok(ClaimOutcome::NotClaimable(Box::new(job.clone())));
        }
        if job.status == JobStatus::Running {
            job.takeovers += 1;
            crate::metrics::taken_over(job);
        } else if !job.continuing {
            job.attempts += 1;
        }
        job.continuing = false;
        job.status = JobStatus::Running;
        job.lease_token = Some(lease.token.clone());
        job.lease_expires_at = Some(lease.expires_at);
        job.resends = 0;
        job.started_at.get_or_insert(now_ms);
        job.due_at = Some(lease.expires_at);
        job.updated_at = now_ms;
        job.version += 1;
        Ok(ClaimOutcome::Claimed(Box::new(job.clone())))
    }

    async fn record_progress(
        &self,
        id: &JobId,
        lease_token: &str,
        update: &ProgressUpdate,
        now_ms: i64,
    ) -> Result<ProgressAck, StoreError> {
        let mut jobs = self.jobs()?;
        let job = jobs.get_mut(id).ok_or(StoreError::LeaseLost)?;
        if !job.is_leased_to(lease_token) {
            return Err(StoreError::LeaseLost);
        }
        job.progress = update.progress;
        job.progress_message = update.message.clone();
        if let Some(checkpoint) = &update.checkpoint {
            job.checkpoint = Some(checkpoint.clone());
        }
        job.updated_at = now_ms;
        job.version += 1;
        Ok(ProgressAck {
            cancel_requested: job.cancel_requested,
        })
    }

    async fn finish(
        &self,
        id: &JobId,
        lease_token: &str,
        finish: &Finish,
        now_ms: i64,
    ) -> Result<JobRecord, StoreError> {
        let mut jobs = self.jobs()?;
        let job = jobs.get_mut(id).ok_or(StoreError::LeaseLost)?;
        if job.ended_by_run(lease_token, finish) {
            // Sent again after a lost answer: applied already.
            let ended = job.clone();
            drop(jobs);
            self.ended(&ended);
            return Ok(ended);
        }
        if !job.is_leased_to(lease_token) {
            return Err(StoreError::LeaseLost);
        }
        let answer_lost = self
            .finish_answers_to_lose
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let lost = || StoreError::Unavailable("injected: the end was written and its answer lost".into());
        job.status = finish.status();
        job.ended_by = Some(lease_token.to_owned());
        job.lease_token = None;
        job.lease_expires_at = None;
        job.updated_at = now_ms;
        job.version += 1;
        match finish {
            Finish::Retry { error, run_at, due_at } => {
                job.error = Some(error.clone());
                (job.run_at, job.due_at) = (Some(*run_at), Some(*due_at));
                return if answer_lost { Err(lost()) } else { Ok(job.clone()) };
            }
            Finish::Continuation {
                run_at,
                due_at,
                stalled_runs,
                queue,
            } => {
                job.queue = queue.clone().unwrap_or(job.queue.clone());
                (job.continuing, job.stalled_runs) = (true, *stalled_runs);
                (job.run_at, job.due_at) = (Some(*run_at), Some(*due_at));
                return if answer_lost { Err(lost()) } else { Ok(job.clone()) };
            }
            Finish::Succeeded { results, .. } => {
                job.results = results.clone();
                job.progress = 100;
                job.progress_message = None;
                job.error = None;
            }
            Finish::Failed { error } => job.error = Some(error.clone()),
            Finish::Cancelled => {}
        }
        end(job, now_ms, self.retention_seconds);
        let ended = job.clone();
        if let Finish::Succeeded { next: Some(next), .. } = finish {
            // Same write: a cancel request stops the chain here.
            let live = jobs.get(&next.id).is_some_and(|j| j.expires_at >= now_ms / 1000);
            if !ended.cancel_requested && !live {
                jobs.insert(next.id.clone(), (**next).clone());
                // The chain keeps its slot: the next step takes one as it is
                // made (over the limit, if need be: no new admission).
                if self.owner_quotas {
                    let mut slots = self.slots.lock().unwrap();
                    slots
                        .entry(next.owner.clone())
                        .or_default()
                        .insert(next.id.clone(), now_ms);
                }
            }
        }
        drop(jobs);
        if answer_lost {
            // As DynamoDB: the write applied; what the adapter does after
            // the answer (metrics, the quota slot) did not happen.
            return Err(lost());
        }
        self.ended(&ended);
        Ok(ended)
    }

    async fn extend_lease(&self, id: &JobId, lease: &Lease, _now_ms: i64) -> Result<ProgressAck, StoreError> {
        if self.hanging_heartbeats.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut jobs = self.jobs()?;
        let job = jobs.get_mut(id).ok_or(StoreError::LeaseLost)?;
        if !job.is_leased_to(&lease.token) {
            return Err(StoreError::LeaseLost);
        }
        job.lease_expires_at = Some(lease.expires_at);
        job.due_at = Some(lease.expires_at);
        job.version += 1;
        Ok(ProgressAck {
            cancel_requested: job.cancel_requested,
        })
    }

    async fn request_cancel(&self, id: &JobId, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        let mut jobs = self.jobs()?;
        let Some(job) = jobs.get_mut(id) else {
            return Ok(CancelOutcome::NotFound);
        };
        match job.status {
            _ if job.ended_as_at(JobStatus::Cancelled, now_ms) => {
                let ended = job.clone();
                drop(jobs);
                self.ended(&ended);
                Ok(CancelOutcome::Cancelled(Box::new(ended)))
            }
            _ if job.unheld_at(now_ms) => {
                job.status = JobStatus::Cancelled;
                job.lease_token = None;
                job.lease_expires_at = None;
                job.cancel_requested = true;
                job.updated_at = now_ms;
                job.version += 1;
                end(job, now_ms, self.retention_seconds);
                let ended = job.clone();
                drop(jobs);
                self.ended(&ended);
                Ok(CancelOutcome::Cancelled(Box::new(ended)))
            }
            JobStatus::Running => {
                job.cancel_requested = true;
                job.updated_at = now_ms;
                job.version += 1;
                Ok(CancelOutcome::Requested(Box::new(job.clone())))
            }
            _ => Ok(CancelOutcome::AlreadyFinished(Box::new(job.clone()))),
        }
    }

    async fn dead_letter(
        &self,
        id: &JobId,
        error: &JobError,
        generation: u32,
        now_ms: i64,
    ) -> Result<Transition, StoreError> {
        let mut jobs = self.jobs()?;
        let Some(job) = jobs.get_mut(id) else {
            return Ok(Transition::NotFound);
        };
        if job.ended_as_at(JobStatus::DeadLettered, now_ms) {
            let ended = job.clone();
            drop(jobs);
            self.ended(&ended);
            return Ok(Transition::Done(Box::new(ended)));
        }
        if job.generation != generation || !job.dead_letterable_at(now_ms) {
            return Ok(Transition::Refused(Box::new(job.clone())));
        }
        job.status = JobStatus::DeadLettered;
        job.error = Some(error.clone());
        job.lease_token = None;
        job.lease_expires_at = None;
        job.updated_at = now_ms;
        job.version += 1;
        end(job, now_ms, self.retention_seconds);
        let ended = job.clone();
        drop(jobs);
        self.ended(&ended);
        Ok(Transition::Done(Box::new(ended)))
    }

    async fn requeue_dead_lettered(&self, id: &JobId, now_ms: i64, due_at: i64) -> Result<Transition, StoreError> {
        let mut jobs = self.jobs()?;
        let Some(job) = jobs.get_mut(id) else {
            return Ok(Transition::NotFound);
        };
        if job.status != JobStatus::DeadLettered {
            return Ok(Transition::Refused(Box::new(job.clone())));
        }
        job.status = JobStatus::Queued;
        job.attempts = 0;
        job.continuing = false;
        job.takeovers = 0;
        job.resends = 0;
        job.generation += 1;
        job.cancel_requested = false;
        job.stalled_runs = 0;
        job.started_at = None;
        job.finished_at = None;
        job.run_at = None;
        job.due_at = Some(due_at);
        job.expires_at = JobRecord::expiry_after(now_ms, self.retention_seconds);
        job.updated_at = now_ms;
        job.version += 1;
        let requeued = job.clone();
        drop(jobs);
        if self.owner_quotas {
            // As the DynamoDB store: active again, it holds a slot (over the limit, if need be).
            let mut slots = self.slots.lock().unwrap();
            slots
                .entry(requeued.owner.clone())
                .or_default()
                .entry(requeued.id.clone())
                .or_insert(now_ms);
        }
        Ok(Transition::Done(Box::new(requeued)))
    }

    async fn list_by_owner(
        &self,
        owner: &str,
        status: Option<JobStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        let after = cursor.map(|raw| list_cursor::decode(raw, owner)).transpose()?;
        let jobs = self.jobs()?;
        let mut mine: Vec<&JobRecord> = jobs.values().filter(|j| j.owner == owner).collect();
        mine.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let start = match &after {
            None => 0,
            Some((created, id)) => mine
                .iter()
                .position(|j| (j.created_at, &j.id) < (*created, id))
                .unwrap_or(mine.len()),
        };
        let page: Vec<&JobRecord> = mine[start..].iter().take(limit).copied().collect();
        let more = start + page.len() < mine.len();
        let next_cursor = page
            .last()
            .filter(|_| more)
            .map(|j| list_cursor::encode(j.created_at, j.id.as_str(), owner));
        Ok(JobPage {
            jobs: page
                .into_iter()
                .filter(|j| status.is_none_or(|s| j.status == s))
                .cloned()
                .collect(),
            next_cursor,
        })
    }

    async fn overdue(&self, now_ms: i64, limit: usize) -> Result<Vec<JobId>, StoreError> {
        let jobs = self.jobs()?;
        let mut due: Vec<(i64, JobId)> = jobs
            .values()
            .filter_map(|j| j.due_at.filter(|&d| d < now_ms).map(|d| (d, j.id.clone())))
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    async fn defer_due(&self, id: &JobId, expected: i64, new_due_at: i64, resent: bool) -> Result<bool, StoreError> {
        let mut jobs = self.jobs()?;
        match jobs.get_mut(id) {
            Some(job) if job.due_at == Some(expected) => {
                job.due_at = Some(new_due_at);
                if resent {
                    job.resends += 1;
                }
                job.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn update_callback(&self, id: &JobId, expected: &Callback, new: &Callback) -> Result<bool, StoreError> {
        let mut jobs = self.jobs()?;
        match jobs.get_mut(id) {
            Some(job) if job.callback.as_ref() == Some(expected) => {
                job.callback = Some(new.clone());
                job.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// What every terminal transition writes.
fn end(job: &mut JobRecord, now_ms: i64, retention_seconds: i64) {
    job.finished_at = Some(now_ms);
    job.due_at = None;
    job.expires_at = JobRecord::expiry_after(now_ms, retention_seconds);
}
