//! Errors into [`JobError`] with `?`: a job handler says once, where a call
//! can fail, whether another attempt could get past it.
//!
//! ```
//! use longrun_core::job_types::JobResultExt;
//! use longrun_core::record::{codes, JobError};
//!
//! fn parse_rows(text: &str) -> Result<u64, JobError> {
//!     let rows: u64 = text.trim().parse().permanent(codes::INVALID_INPUT)?;
//!     Ok(rows)
//! }
//! assert_eq!(parse_rows(" 12 ").unwrap(), 12);
//! let err = parse_rows("twelve").unwrap_err();
//! assert_eq!((err.code.as_str(), err.retryable), ("invalid_input", false));
//! ```

use std::fmt::Display;

use crate::record::JobError;

/// Turns any `Result` whose error prints into a `Result<T, JobError>` with a
/// code, permanent (another attempt would fail the same way) or retryable
/// (a fault that may pass: the job is retried after a backoff while it has
/// attempts left). The message is the error's own text, bounded as every
/// job error is.
///
/// It is for errors that are not yet a `JobError`: on a `Result<_, JobError>`
/// (what `ctx.open_input` and `ctx.put_result` answer) it would replace the
/// error's own code and class — a permanent `input_not_found` would become
/// whatever you name — so propagate those with a plain `?`.
pub trait JobResultExt<T> {
    /// A failure another attempt would not fix: the job FAILS.
    fn permanent(self, code: &str) -> Result<T, JobError>;

    /// A failure another attempt may get past: the job is retried.
    fn retryable(self, code: &str) -> Result<T, JobError>;
}

impl<T, E: Display> JobResultExt<T> for Result<T, E> {
    fn permanent(self, code: &str) -> Result<T, JobError> {
        self.map_err(|err| JobError::permanent(code, err.to_string()))
    }

    fn retryable(self, code: &str) -> Result<T, JobError> {
        self.map_err(|err| JobError::retryable(code, err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::JobResultExt;
    use crate::record::{codes, MAX_ERROR_MESSAGE_BYTES};

    #[test]
    fn each_says_whether_another_attempt_could_succeed_and_keeps_the_message() {
        let failed: Result<(), &str> = Err("disk on fire");
        let permanent = failed.permanent("internal").unwrap_err();
        assert_eq!((permanent.code.as_str(), permanent.retryable), ("internal", false));
        assert_eq!(permanent.message, "disk on fire");
        let retryable = failed.retryable(codes::STORAGE).unwrap_err();
        assert_eq!((retryable.code.as_str(), retryable.retryable), (codes::STORAGE, true));
        assert_eq!(Ok::<u8, &str>(7).permanent("internal"), Ok(7));
    }

    #[test]
    fn a_long_message_is_bounded_like_every_job_error() {
        let long = "x".repeat(10 * MAX_ERROR_MESSAGE_BYTES);
        let err = Err::<(), _>(long).permanent("internal").unwrap_err();
        assert!(err.message.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", err.message.len());
    }
}
