//! How a job ends badly: [`JobError`] (a code, a bounded message, and
//! whether another attempt could succeed) and the [`codes`] the system gives.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest job error message kept, in bytes of UTF-8: a longer one is
/// cut on a character boundary and ends with [`TRUNCATION_MARKER`], so no
/// error (a bad cell of any size, say) can push a job record past
/// DynamoDB's 400 KB item limit or flood the logs.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// What ends a text that [`shorten`] cut.
pub const TRUNCATION_MARKER: &str = "…";

/// `text` if it has at most `max_bytes` bytes; otherwise its longest prefix
/// that ends on a character boundary and, followed by [`TRUNCATION_MARKER`],
/// fits in `max_bytes` (just the marker when `max_bytes` is smaller than it).
pub fn shorten(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mut end = max_bytes.saturating_sub(TRUNCATION_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{TRUNCATION_MARKER}", &text[..end]))
}

/// A job error message as it is kept: at most [`MAX_ERROR_MESSAGE_BYTES`].
fn bounded_message(message: String) -> String {
    match shorten(&message, MAX_ERROR_MESSAGE_BYTES) {
        Cow::Borrowed(_) => message,
        Cow::Owned(short) => short,
    }
}

/// A coded error a job ended (or paused) with. `retryable` says whether
/// another attempt could succeed.
///
/// Its message is bounded to [`MAX_ERROR_MESSAGE_BYTES`] wherever an error
/// comes into being or leaves the process: the constructors, `Deserialize`
/// (records read back), `Serialize` (records written, API views) and
/// `Display` (logs), so even an error built field by field is stored and
/// logged short.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Machine-readable code: one of [`codes`] or a job handler's own.
    pub code: String,
    /// What went wrong, for a human; at most [`MAX_ERROR_MESSAGE_BYTES`].
    #[serde(serialize_with = "serialize_bounded", deserialize_with = "deserialize_bounded")]
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

fn serialize_bounded<S: serde::Serializer>(message: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&shorten(message, MAX_ERROR_MESSAGE_BYTES))
}

fn deserialize_bounded<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    String::deserialize(deserializer).map(bounded_message)
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, shorten(&self.message, MAX_ERROR_MESSAGE_BYTES))
    }
}

impl std::error::Error for JobError {}

impl JobError {
    /// An error another attempt would not fix (`retryable: false`).
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        JobError {
            code: code.to_owned(),
            message: bounded_message(message.into()),
            retryable: false,
        }
    }

    /// An error another attempt may get past (`retryable: true`); the job is
    /// retried after a backoff while it has attempts left.
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        JobError {
            code: code.to_owned(),
            message: bounded_message(message.into()),
            retryable: true,
        }
    }

    /// Whether this error has the code `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
}

/// Error codes the system itself gives (job handlers add their own).
pub mod codes {
    /// The input does not fit the job type (permanent).
    pub const INVALID_INPUT: &str = "invalid_input";
    /// An input object the job names does not exist (permanent).
    pub const INPUT_NOT_FOUND: &str = "input_not_found";
    /// The input object was replaced while the job read it: a run resuming
    /// from a checkpoint found another version under the key (permanent;
    /// the summary would be of neither).
    pub const INPUT_CHANGED: &str = "input_changed";
    /// The run stopped because its owner asked to cancel; the job ends CANCELLED.
    pub const CANCELLED: &str = "cancelled";
    /// The run stopped because another worker took over its lease; the
    /// record is left to that worker.
    pub const LEASE_LOST: &str = "lease_lost";
    /// The run reached its stop time, the earlier of the invocation's end and
    /// the job's own deadline (retryable); the worker turns it into a
    /// continuation or [`JOB_TIMEOUT`].
    pub const INVOCATION_DEADLINE: &str = "invocation_deadline";
    /// Reading an input or writing a result failed on a storage fault (retryable).
    pub const STORAGE: &str = "storage_unavailable";
    /// The worker has no handler for the job's type (permanent).
    pub const UNKNOWN_JOB_TYPE: &str = "unknown_job_type";
    /// The job ran past its own `timeout_seconds` (permanent).
    pub const JOB_TIMEOUT: &str = "job_timeout";
    /// The handler panicked: a crash, retried whatever `max_attempts` says.
    pub const HANDLER_PANICKED: &str = "handler_panicked";
    /// The job's message reached the dead-letter queue; the job ends DEAD_LETTERED.
    pub const DEAD_LETTERED: &str = "dead_lettered";
    /// A bug or an impossible state inside a job handler (permanent).
    pub const INTERNAL: &str = "internal";
    /// The checkpoint an earlier run saved no longer parses as the job
    /// type's checkpoint (its type changed under a running job; permanent).
    pub const INVALID_CHECKPOINT: &str = "invalid_checkpoint";
    /// The job was started more than `MAX_CLAIMS` times without finishing (permanent).
    pub const TOO_MANY_CRASHES: &str = "too_many_crashes";
    /// The job ran out of invocation time `MAX_STALLED_RUNS` times in a row
    /// without saving a checkpoint: continuing would only repeat the same work.
    pub const NO_PROGRESS: &str = "no_progress";
}
