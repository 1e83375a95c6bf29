//! `longrun-types`: the longrun job API's wire types, and nothing else.
//!
//! What a caller sends and reads — the submit and upload requests, the job
//! view and list ([`api`]), recurring schedules ([`schedule`]), RFC 9457 problems ([`problem`]), job statuses
//! and priorities ([`JobStatus`], [`Priority`]), and the errors a job ends
//! with ([`JobError`], [`codes`]). It depends on serde alone, so a client
//! (`longrun-client`, the CLI, a user's own service) can speak the API
//! without compiling the platform: no tokio, no AWS SDK, no job type.

pub mod api;
mod error;
pub mod problem;
pub mod schedule;
mod status;

pub use error::{codes, shorten, JobError, MAX_ERROR_MESSAGE_BYTES, TRUNCATION_MARKER};
pub use problem::{FieldError, Problem};
pub use status::{JobStatus, Priority};
