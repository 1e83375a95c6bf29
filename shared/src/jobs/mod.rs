//! Job types: the actual work. Each is a [`JobHandler`] registered in
//! [`Registry::standard`], the one place that knows them all; adding a job
//! type touches that function and its own module only.
//!
//! A handler gets a [`JobContext`]: progress and checkpoint reporting (throttled,
//! fenced by the worker's lease, and the channel through which it learns of a
//! cancel request), the invocation deadline, its inputs and a place for results.

mod context;
mod input;
mod report;
mod sleep;
#[cfg(test)]
pub(crate) mod testing;
mod thumbnail;

pub use context::{JobContext, JobRun, JobServices, StopSignal};
pub use report::ReportJob;
pub use sleep::SleepJob;
pub use thumbnail::ThumbnailJob;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::api::FieldError;
use crate::config::Config;
use crate::job::{JobError, ResultObject};

/// One kind of work.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The `type` callers submit.
    fn job_type(&self) -> &'static str;

    /// Checks an input at submit time, so bad input is refused with a 422
    /// instead of failing later in the worker.
    fn validate(&self, input: &Value) -> Result<(), Vec<FieldError>>;

    /// Does the work and returns the result objects it wrote through `ctx`.
    async fn run(&self, ctx: &JobContext, input: &Value) -> Result<Vec<ResultObject>, JobError>;
}

/// The job types this deployment runs, by type name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn JobHandler>>,
}

impl Registry {
    /// Every job type, as configured (`sleep` only with `ENABLE_SLEEP_JOB`).
    pub fn standard(config: &Config) -> Self {
        let mut registry = Registry::default();
        registry.register(Arc::new(ReportJob));
        registry.register(Arc::new(ThumbnailJob::new(config.max_thumbnail_source_bytes)));
        if config.enable_sleep_job {
            registry.register(Arc::new(SleepJob));
        }
        registry
    }

    /// Adds a job type, replacing any of the same type name.
    pub fn register(&mut self, handler: Arc<dyn JobHandler>) {
        self.handlers.insert(handler.job_type(), handler);
    }

    /// The handler of `job_type`, if this deployment runs it.
    pub fn get(&self, job_type: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(job_type).cloned()
    }

    /// The type names this deployment runs, sorted.
    pub fn job_types(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}
