//! The job API: what a job type implements and what it is handed. Each job
//! type is a [`JobHandler`] put in a [`Registry`] by the app's own `main`
//! (`longrun_jobs::standard` is the set longrun ships); submit and the
//! worker are built from that one registry.
//!
//! A new job type implements [`TypedJob`]: it names its input type, checks
//! what serde cannot, and runs on the parsed input. Every `TypedJob` is a
//! `JobHandler` through one impl here, which parses the JSON input the same
//! way at submit time and in the worker. Implement `JobHandler` directly only
//! for a handler that must see the raw JSON (test jobs do).
//!
//! A handler gets a [`JobContext`]: progress and checkpoint reporting (throttled,
//! fenced by the worker's lease, and the channel through which it learns of a
//! cancel request), the invocation deadline, its inputs and a place for results.

mod context;
mod errors;
mod input;
mod state_objects;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use context::{JobContext, JobRun, JobServices, StopSignal};
pub use errors::JobResultExt;
pub use input::{check_input_key, field_error};
pub use schemars::JsonSchema;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::input::parse_input;
use crate::api::FieldError;
use crate::record::{codes, JobError, ResultObject};

/// One kind of work, as submit and the worker see it: input as JSON.
///
/// New job types implement [`TypedJob`] instead, which provides this.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// The `type` callers submit.
    fn job_type(&self) -> &'static str;

    /// Checks an input at submit time, so bad input is refused with a 422
    /// instead of failing later in the worker.
    fn validate(&self, input: &Value) -> Result<(), Vec<FieldError>>;

    /// The object keys an input names for the job to read, each with its
    /// field (e.g. `("input.source.key", key)`), so submit can hold them to
    /// the caller's own prefix. None by default.
    fn input_keys(&self, input: &Value) -> Vec<(&'static str, String)> {
        let _ = input;
        Vec::new()
    }

    /// The JSON Schema (2020-12, as OpenAPI 3.1 embeds it) of the input,
    /// for the served OpenAPI document. `{}`, any JSON, by default; a
    /// [`TypedJob`]'s is derived from its `Input` type.
    fn input_schema(&self) -> Value {
        Value::Object(serde_json::Map::new())
    }

    /// The limit ([`crate::limits`], by name) a job with this input runs
    /// under; none by default. A name the deployment does not configure in
    /// `LIMITS` is no limit.
    fn limit(&self, input: &Value) -> Option<String> {
        let _ = input;
        None
    }

    /// Does the work and returns the result objects it wrote through `ctx`.
    async fn run(&self, ctx: &JobContext, input: &Value) -> Result<Vec<ResultObject>, JobError>;
}

/// One kind of work with a typed input and a typed checkpoint: how a job
/// type is written (see the guide, `docs/job-types.md`).
///
/// Its input is parsed from JSON by serde, once at submit time and again in
/// the worker, both through the [`JobHandler`] impl every `TypedJob` gets: a
/// malformed input is refused at submit with a field error on `input`
/// (serde's message), and fails the job permanently with
/// [`codes::INVALID_INPUT`] should one reach the worker anyway.
///
/// Its checkpoint is what [`JobContext::checkpoint`] saved in an earlier run
/// of the same job (a continuation after the invocation's deadline, a retry,
/// a takeover after a crash), parsed back into [`Checkpoint`](Self::Checkpoint)
/// and handed to [`run`](Self::run). A saved checkpoint that no longer
/// parses (its type changed under a running job) fails the job permanently
/// with [`codes::INVALID_CHECKPOINT`] rather than starting the work over
/// unannounced. A job that never checkpoints says `type Checkpoint = ();`.
#[async_trait]
pub trait TypedJob: Send + Sync {
    /// The input, as callers submit it in the request's `input`. Its
    /// [`JsonSchema`] (`#[derive(JsonSchema)]`, from the `schemars` crate)
    /// is the input's schema in the served OpenAPI document, so the
    /// contract is the type.
    type Input: DeserializeOwned + JsonSchema + Send + Sync;

    /// The state a run saves with [`JobContext::checkpoint`] for the next run
    /// to resume from; `()` for a job that does not checkpoint.
    type Checkpoint: Serialize + DeserializeOwned + Send + Sync;

    /// The `type` callers submit.
    fn job_type(&self) -> &'static str;

    /// Checks beyond the shape serde enforces (ranges, allowed keys, …), at
    /// submit time, so bad input is refused with a 422 instead of failing
    /// later in the worker.
    fn check(&self, input: &Self::Input) -> Result<(), Vec<FieldError>> {
        let _ = input;
        Ok(())
    }

    /// The object keys the input names for the job to read, with their
    /// fields ([`JobHandler::input_keys`]). None by default.
    fn input_keys(&self, input: &Self::Input) -> Vec<(&'static str, String)> {
        let _ = input;
        Vec::new()
    }

    /// The limit ([`crate::limits`], by name) a job with this input runs
    /// under ([`JobHandler::limit`]); none by default.
    fn limit(&self, input: &Self::Input) -> Option<String> {
        let _ = input;
        None
    }

    /// Does the work and returns the result objects it wrote through `ctx`;
    /// `resume` is the checkpoint an earlier run saved, `None` on a fresh start.
    async fn run(
        &self,
        ctx: &JobContext,
        input: Self::Input,
        resume: Option<Self::Checkpoint>,
    ) -> Result<Vec<ResultObject>, JobError>;
}

/// The one place a typed job's input is parsed, at submit (`validate`) and in
/// the worker (`run`).
#[async_trait]
impl<T: TypedJob> JobHandler for T {
    fn job_type(&self) -> &'static str {
        TypedJob::job_type(self)
    }

    fn validate(&self, input: &Value) -> Result<(), Vec<FieldError>> {
        let input = parse_input::<T::Input>(input).map_err(|e| vec![field_error("input", e.to_string())])?;
        self.check(&input)
    }

    fn input_schema(&self) -> Value {
        input_schema::<T::Input>()
    }

    fn input_keys(&self, input: &Value) -> Vec<(&'static str, String)> {
        parse_input::<T::Input>(input)
            .map(|input| TypedJob::input_keys(self, &input))
            .unwrap_or_default()
    }

    fn limit(&self, input: &Value) -> Option<String> {
        parse_input::<T::Input>(input)
            .ok()
            .and_then(|input| TypedJob::limit(self, &input))
    }

    async fn run(&self, ctx: &JobContext, input: &Value) -> Result<Vec<ResultObject>, JobError> {
        let input = parse_input::<T::Input>(input).permanent(codes::INVALID_INPUT)?;
        let resume = ctx
            .resume_from()
            .map(T::Checkpoint::deserialize)
            .transpose()
            .permanent(codes::INVALID_CHECKPOINT)?;
        TypedJob::run(self, ctx, input, resume).await
    }
}

/// The job types this deployment runs, by type name.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Arc<dyn JobHandler>>,
}

impl Registry {
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

/// The JSON Schema of `T` as the served OpenAPI document embeds it: draft
/// 2020-12, subschemas inlined (a recursive type keeps its `$defs`), no
/// `$schema` keyword.
pub fn input_schema<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or_default()
}
