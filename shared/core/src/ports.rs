//! The ports: the traits the functions talk to storage through.
//! [`JobStore`] keeps job records and, beside them, the owners' quota slots,
//! webhook secrets and stream tickets (DynamoDB; about twenty methods, to be
//! split by concern), [`JobQueue`] carries job ids to
//! workers (SQS), [`ObjectStore`] holds job inputs and results (S3). Each has
//! an AWS adapter in [`crate::aws`] and an in-memory one in [`crate::memory`];
//! `shared/aws/tests/contract.rs` runs the same cases against both.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;

use crate::record::{Callback, Finish, JobId, JobRecord, Lease, ProgressUpdate};
use crate::webhook::WebhookSecrets;

/// A storage failure. `LeaseLost` and `NotFound` are answers, the rest are faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write was fenced off: the caller no longer holds the job's lease.
    #[error("lease lost: the job is no longer held by this worker")]
    LeaseLost,
    /// No record has the job's id.
    #[error("job not found")]
    NotFound,
    /// The store could not be reached or refused for load; try again later.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
    /// A list cursor that this store did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The stored item does not decode as a job record.
    #[error("corrupt job record: {0}")]
    Corrupt(String),
}

/// What a conditional create found.
#[derive(Clone, Debug, PartialEq)]
pub enum CreateOutcome {
    /// The record was written: the job is new.
    Created,
    /// A live record with the same id exists (idempotent replay or key reuse).
    Exists(Box<JobRecord>),
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimOutcome {
    /// The caller now holds the lease; the record as written.
    Claimed(Box<JobRecord>),
    /// Someone else holds it, it is finished, or it is not due yet.
    NotClaimable(Box<JobRecord>),
    /// No record has this id.
    NotFound,
}

/// What a conditional state change found.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// The change was made; the record as written.
    Done(Box<JobRecord>),
    /// The record is not in a state the change applies to; the record as found.
    Refused(Box<JobRecord>),
    /// No record has this id.
    NotFound,
}

/// What a cancel request did.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    /// No worker held the job (queued, or running under an expired lease)
    /// and it is now CANCELLED.
    Cancelled(Box<JobRecord>),
    /// The job is running under a live lease; `cancel_requested` is set and
    /// it stops at its next progress write or heartbeat.
    Requested(Box<JobRecord>),
    /// The job had already ended; nothing changed.
    AlreadyFinished(Box<JobRecord>),
    /// No record has this id.
    NotFound,
}

/// What reserving a slot of an owner's quota of active jobs found.
#[derive(Clone, Debug, PartialEq)]
pub enum SlotOutcome {
    /// The job holds a slot: `newly` when this call took it, not when the
    /// job already held one (a replay).
    Reserved {
        /// Whether this call added the job to the owner's active set.
        newly: bool,
    },
    /// Every slot is held; these are the jobs holding them.
    Full {
        /// The owner's active set as stored.
        active: Vec<JobId>,
    },
}

/// One page of a caller's jobs, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct JobPage {
    /// This page's records, newest first; fewer than the limit when filtered
    /// by status, even if more pages follow.
    pub jobs: Vec<JobRecord>,
    /// Opaque; pass it back for the next page. `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What a progress write learned from the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAck {
    /// Whether the owner has asked to cancel; the run should then stop.
    pub cancel_requested: bool,
}

/// Job records. Every write is conditional: creates on absence, claims on
/// claimability, everything a worker writes afterwards on its lease. A store
/// holds the retention of its records (`JOB_RETENTION_DAYS`): every way a
/// job ends, and a redrive, sets its TTL that long from now.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Writes `job` unless a live record with its id exists
    /// (`attribute_not_exists(pk) OR expires_at < now`), in one request.
    async fn create(&self, job: &JobRecord, now_ms: i64) -> Result<CreateOutcome, StoreError>;

    /// Reads a record (strongly consistent).
    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Takes the job for a run ([`JobRecord::claimable_at`]): QUEUED and due
    /// becomes RUNNING under `lease` with `attempts + 1`; RUNNING under an
    /// expired lease is taken over with `takeovers + 1` (a crash does not
    /// use up an attempt). Either way `resends` goes back to 0.
    async fn claim(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ClaimOutcome, StoreError>;

    /// Records progress (and optionally a checkpoint) under the lease.
    async fn record_progress(
        &self,
        id: &JobId,
        lease_owner: &str,
        update: &ProgressUpdate,
        now_ms: i64,
    ) -> Result<ProgressAck, StoreError>;

    /// Heartbeat: moves the lease's expiry (and `due_at`) to `lease.expires_at`.
    async fn extend_lease(&self, id: &JobId, lease: &Lease, now_ms: i64) -> Result<ProgressAck, StoreError>;

    /// Ends the run under the lease; returns the record as written.
    async fn finish(
        &self,
        id: &JobId,
        lease_owner: &str,
        finish: &Finish,
        now_ms: i64,
    ) -> Result<JobRecord, StoreError>;

    /// Cancels a job no worker holds ([`JobRecord::unheld_at`]: queued, or
    /// running under an expired lease) at once, or asks a running one to stop.
    async fn request_cancel(&self, id: &JobId, now_ms: i64) -> Result<CancelOutcome, StoreError>;

    /// Marks a job DEAD_LETTERED with `error`, for a dead letter sent in
    /// generation `redrives`: only while the job is still in that
    /// generation (a message from before a redrive is stale) and
    /// [`JobRecord::dead_letterable_at`] — QUEUED and due (not waiting out a
    /// retry backoff), or RUNNING under an expired lease (a live worker keeps
    /// its job), and not asked to cancel.
    async fn dead_letter(
        &self,
        id: &JobId,
        error: &crate::record::JobError,
        redrives: u32,
        now_ms: i64,
    ) -> Result<Transition, StoreError>;

    /// Puts a DEAD_LETTERED job back to QUEUED (operator redrive), due at
    /// `due_at`, as a fresh run in a new generation (`redrives + 1`): no
    /// attempts, takeovers, resends or stalled runs counted, no cancel
    /// request, no `started_at` (its `timeout_seconds` counts from the next
    /// start), and the store's retention counted from now. Its checkpoint,
    /// progress and last error are kept.
    async fn requeue_dead_lettered(&self, id: &JobId, now_ms: i64, due_at: i64) -> Result<Transition, StoreError>;

    /// A page of `owner`'s jobs, newest first, optionally only those in
    /// `status` (a filtered page may hold fewer than `limit`, and still have
    /// a next cursor). A cursor that does not decode, or that was handed to
    /// another owner, is `InvalidCursor`.
    async fn list_by_owner(
        &self,
        owner: &str,
        status: Option<crate::record::JobStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError>;

    /// Ids of up to `limit` non-terminal jobs whose `due_at` is before `now_ms`
    /// (the sparse due index; eventually consistent).
    async fn overdue(&self, now_ms: i64, limit: usize) -> Result<Vec<JobId>, StoreError>;

    /// Adds job `id` to `owner`'s set of active jobs, unless the set already
    /// holds `limit` others (one conditional request: exact under concurrent
    /// submits). A job already in the set is `Reserved { newly: false }`.
    async fn reserve_slot(&self, owner: &str, id: &JobId, limit: u32) -> Result<SlotOutcome, StoreError>;

    /// Takes job `id` out of `owner`'s active set; idempotent. A store with
    /// owner quotas on does this itself whenever a job ends (finish, cancel,
    /// dead-letter), and a chain step that succeeds first adds its next
    /// step to the set, in the write that creates it.
    async fn release_slot(&self, owner: &str, id: &JobId) -> Result<(), StoreError>;

    /// `owner`'s active set: the jobs holding a slot of its quota.
    async fn active_slots(&self, owner: &str) -> Result<Vec<JobId>, StoreError>;

    /// Moves `due_at` from `expected` to `new_due_at`, and with `resent`
    /// counts one more resend; `false` when it was no longer `expected`
    /// (someone else acted on the job).
    async fn defer_due(&self, id: &JobId, expected: i64, new_due_at: i64, resent: bool) -> Result<bool, StoreError>;

    /// Replaces job `id`'s webhook delivery state, only while it is still
    /// exactly `expected` (what the caller read): `false` when another
    /// delivery changed it first, or there is no such job.
    async fn update_callback(&self, id: &JobId, expected: &Callback, new: &Callback) -> Result<bool, StoreError>;

    /// `owner`'s webhook signing secrets, if it made any.
    async fn webhook_secrets(&self, owner: &str) -> Result<Option<WebhookSecrets>, StoreError>;

    /// Stores `new` as `owner`'s webhook secrets, only while the stored ones
    /// are still those made at `expected_created_at` (`None`: none stored);
    /// `false` when another rotation came first.
    async fn replace_webhook_secrets(
        &self,
        owner: &str,
        expected_created_at: Option<i64>,
        new: &WebhookSecrets,
    ) -> Result<bool, StoreError>;

    /// Stores a stream ticket (`POST /jobs/{id}/stream`) until it expires.
    async fn put_stream_ticket(&self, ticket: &StreamTicket) -> Result<(), StoreError>;

    /// The ticket whose token hashes to `token_hash`, unless it expired
    /// before `now_ms` or never existed.
    async fn stream_ticket(&self, token_hash: &str, now_ms: i64) -> Result<Option<StreamTicket>, StoreError>;
}

/// The right to open one job's event stream without an `Authorization`
/// header (a browser's `EventSource` cannot send one): handed to the job's
/// owner by the authenticated API, named in the stream URL by a random
/// token of which only the hash is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTicket {
    /// SHA-256 (hex) of the token in the URL.
    pub token_hash: String,
    /// The owner it was handed to.
    pub owner: String,
    /// The one job whose events it opens.
    pub job_id: JobId,
    /// Until when it opens the stream, epoch milliseconds.
    pub expires_at: i64,
}

impl StreamTicket {
    /// A new ticket for `owner` to open `job_id`'s stream until
    /// `expires_at`, and its token (256 random bits, hex): the token goes
    /// in the URL, the ticket (with only its hash) in the store.
    pub fn issue(owner: &str, job_id: &JobId, expires_at: i64) -> (String, StreamTicket) {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let ticket = StreamTicket {
            token_hash: Self::hash_token(&token),
            owner: owner.to_owned(),
            job_id: job_id.clone(),
            expires_at,
        };
        (token, ticket)
    }

    /// SHA-256 (hex) of a ticket token: what the store keeps and looks up.
    pub fn hash_token(token: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    }
}

/// The body of a queue message: only the job id (the record is the truth),
/// when it was enqueued, and the job's generation then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    /// The job to run.
    pub job_id: JobId,
    /// When the message was sent, epoch milliseconds.
    pub enqueued_at: i64,
    /// The job's [`JobRecord::redrives`] when the message was sent (left out
    /// of the body while 0): a dead letter only ends the generation it
    /// belongs to.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub redrives: u32,
}

impl JobMessage {
    /// A message for `job`, sent now, in its current generation.
    pub fn for_job(job: &JobRecord, now_ms: i64) -> Self {
        JobMessage {
            job_id: job.id.clone(),
            enqueued_at: now_ms,
            redrives: job.redrives,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A queue failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No queue has this logical name (it is not in `QUEUE_URLS`).
    #[error("unknown queue {0:?}")]
    UnknownQueue(String),
    /// The receipt handle is no longer valid (message deleted or re-received).
    #[error("receipt handle no longer valid")]
    StaleReceipt,
    /// The queue could not be reached or refused the call; try again later.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// The work queues, by logical name (`fast`, `slow`).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends `message` to the queue named `queue`, hidden from consumers for
    /// `delay_seconds` (SQS allows at most 900).
    async fn enqueue(&self, queue: &str, message: &JobMessage, delay_seconds: u32) -> Result<(), QueueError>;

    /// Hides a received message for `seconds` more (backoff, heartbeat).
    async fn change_visibility(&self, queue: &str, receipt_handle: &str, seconds: u32) -> Result<(), QueueError>;

    /// How many messages wait in the queue named `queue`: visible plus
    /// delayed (accepted work not yet started; messages being worked on are
    /// not counted). Approximate, as SQS reports it.
    async fn depth(&self, queue: &str) -> Result<u64, QueueError>;
}

/// The content type every upload is signed for (and sent with).
pub const UPLOAD_CONTENT_TYPE: &str = "application/octet-stream";

/// An object failure.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// No object has this key.
    #[error("object {0} not found")]
    NotFound(String),
    /// The store could not be reached or refused the call; try again later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
}

/// A stream over one object's bytes.
pub struct ObjectReader {
    /// Size in bytes when the store knows it.
    pub size: Option<u64>,
    /// The object's bytes, read as they arrive.
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

/// Job inputs (`inputs/…`) and results (`results/<job_id>/…`).
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes `body` under `key` with `content_type`, replacing any object there.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), ObjectError>;

    /// Opens an object for streaming reads.
    async fn open(&self, key: &str) -> Result<ObjectReader, ObjectError>;

    /// A URL anyone holding it may GET the object with, for `ttl`.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, ObjectError>;

    /// A URL anyone holding it may PUT exactly `bytes` bytes of
    /// `application/octet-stream` to `key` with, for `ttl` (both headers
    /// are signed, so S3 refuses another length).
    async fn presign_put(&self, key: &str, bytes: u64, ttl: Duration) -> Result<String, ObjectError>;
}
