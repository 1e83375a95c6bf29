//! `longrun`: the domain of the long-running job system.
//!
//! Everything the Lambda functions share lives here: the job record and its
//! state machine ([`record`]), the HTTP API types ([`api`], [`apigw`]), the ports
//! the functions talk through ([`ports`]) with their AWS ([`aws`]) and
//! in-memory ([`memory`]) adapters, the job types that do the actual work
//! ([`job_types`]), configuration from the environment ([`config`]), tracing
//! setup ([`telemetry`]), owner-scoped job access for the HTTP functions
//! ([`access`]) and the Lambda bootstrap every function's `main` calls
//! ([`lambda`]). No function crate depends on another; they all
//! depend on this one.

pub mod access;
pub mod api;
pub mod apigw;
pub mod aws;
pub mod backpressure;
pub mod chain;
pub mod config;
pub mod job_types;
pub mod lambda;
mod list_cursor;
pub mod memory;
pub mod metrics;
pub mod ports;
pub mod record;
pub mod telemetry;
pub mod testing;
pub mod time;
pub mod webhook;

pub use async_trait::async_trait;
pub use bytes;
pub use config::Config;
pub use record::{JobError, JobId, JobRecord, JobStatus, ResultObject};
