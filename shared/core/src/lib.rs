//! `longrun-core`: the domain of the long-running job system, free of any
//! backend.
//!
//! The job record and its state machine ([`record`], [`chain`]), the API
//! views ([`api`]) over the wire types of `longrun-types`, the ports the
//! functions talk through ([`ports`]) with in-memory adapters ([`memory`]),
//! the job API a job type is written against ([`job_types`]: the job traits,
//! their context and the registry, and behind the `test-util` feature a
//! harness to test one), configuration from the environment ([`config`]),
//! tracing and metrics setup ([`telemetry`], [`metrics`]), owner-scoped job
//! access for the HTTP functions ([`access`]) and webhook signing and target
//! checks ([`webhook`]).
//!
//! The crates above it: `longrun-aws` (the AWS adapters of the ports),
//! `longrun-jobs` (the job types longrun ships), `longrun-lambda` (the
//! Lambda glue), one crate per function's handler, and `longrun-bootstrap`
//! (the one binary). Nothing here depends on any of them.

pub mod access;
pub mod api;
pub mod backpressure;
pub mod chain;
pub mod config;
pub mod fixtures;
pub mod job_types;
pub mod limits;
pub mod list_cursor;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod record;
pub mod schedule;
pub mod streams;
pub mod telemetry;
pub mod time;
pub mod webhook;

pub use async_trait::async_trait;
pub use bytes;
pub use config::Config;
pub use record::{JobError, JobId, JobRecord, JobStatus, ResultObject};
