//! One binary for every function.
//!
//! An app's `main` calls [`run`] with its job registry; which function the
//! process plays — submit, status, worker, … — comes from the environment
//! variable [`FUNCTION_VAR`], which the template sets on each function. So
//! submit (which validates inputs) and the worker (which runs them) are
//! always built from one registry, and a deployment builds one binary.
//!
//! ```no_run
//! use std::sync::Arc;
//! use longrun_core::job_types::Registry;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     longrun_bootstrap::run(|config| {
//!         let mut registry = longrun_jobs::standard(config);
//!         // registry.register(Arc::new(MyJob::new())); // an app's own job types
//!         registry
//!     })
//!     .await
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use longrun_core::job_types::Registry;
use longrun_core::Config;
use longrun_lambda::{run_http, run_schedule, run_sqs, BoxError};

/// The environment variable naming the function a process plays.
pub const FUNCTION_VAR: &str = "LONGRUN_FUNCTION";

/// A function of the template: what one process of the binary serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `POST /jobs`, `POST /uploads`, `POST /webhook-secret`, `/schedules`.
    Submit,
    /// `GET /jobs/{id}`, `GET /jobs`, `POST /jobs/{id}/stream`.
    Status,
    /// `POST /jobs/{id}/cancel`.
    Cancel,
    /// The job queues' consumer: runs the jobs.
    Worker,
    /// The job dead-letter queue's consumer.
    DeadLetter,
    /// The scheduled sweep for lost messages and expired leases.
    Reconciler,
    /// The scheduled pass that submits recurring schedules' ticks.
    Scheduler,
    /// The webhook queue's consumer: delivers job ends.
    Webhook,
    /// The events function URL: server-sent events.
    Events,
}

impl Function {
    /// Every function.
    pub const ALL: [Function; 9] = [
        Function::Submit,
        Function::Status,
        Function::Cancel,
        Function::Worker,
        Function::DeadLetter,
        Function::Reconciler,
        Function::Scheduler,
        Function::Webhook,
        Function::Events,
    ];

    /// Its name, as [`FUNCTION_VAR`] gives it: `submit`, `dead-letter`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Submit => "submit",
            Function::Status => "status",
            Function::Cancel => "cancel",
            Function::Worker => "worker",
            Function::DeadLetter => "dead-letter",
            Function::Reconciler => "reconciler",
            Function::Scheduler => "scheduler",
            Function::Webhook => "webhook",
            Function::Events => "events",
        }
    }

    /// The function named exactly `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the binary could not start serving. Its `Debug` is its message, so
/// `main` returning it prints the sentence, not the struct.
#[derive(thiserror::Error)]
pub enum BootstrapError {
    /// [`FUNCTION_VAR`] is missing or names no function.
    #[error("{FUNCTION_VAR} must name the function to play (one of {}), not {given:?}", names())]
    UnknownFunction {
        /// What the variable held (empty when unset).
        given: String,
    },
}

impl fmt::Debug for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn names() -> String {
    Function::ALL.map(Function::as_str).join(", ")
}

/// The function [`FUNCTION_VAR`] names in this process's environment.
pub fn function_from_env() -> Result<Function, BootstrapError> {
    let name = std::env::var(FUNCTION_VAR).unwrap_or_default();
    Function::parse(&name).ok_or(BootstrapError::UnknownFunction { given: name })
}

/// Serves the function this process plays (from [`FUNCTION_VAR`]) until the
/// Lambda runtime stops it. `registry` makes the app's job types from the
/// function's configuration; it is called once, by submit, the scheduler and
/// the worker.
pub async fn run<R>(registry: R) -> Result<(), BoxError>
where
    R: FnOnce(&Config) -> Registry,
{
    let with_registry = |config: &Config| Arc::new(registry(config));
    match function_from_env()? {
        Function::Submit => {
            run_http(|config, clients| {
                let registry = with_registry(&config);
                longrun_submit::SubmitDeps::from_aws(config, clients, registry)
            })
            .await
        }
        Function::Worker => {
            run_sqs(|config, clients| {
                let registry = with_registry(&config);
                longrun_worker::WorkerDeps::from_aws(config, clients, registry)
            })
            .await
        }
        Function::Scheduler => {
            run_schedule(|config, clients| {
                let registry = with_registry(&config);
                longrun_submit::SchedulerDeps::from_aws(config, clients, registry)
            })
            .await
        }
        Function::Status => run_http(longrun_status::StatusDeps::from_aws).await,
        Function::Cancel => run_http(longrun_cancel::CancelDeps::from_aws).await,
        Function::DeadLetter => run_sqs(longrun_dead_letter::DeadLetterDeps::from_aws).await,
        Function::Reconciler => run_schedule(longrun_reconciler::ReconcilerDeps::from_aws).await,
        Function::Webhook => run_sqs(longrun_webhook::WebhookDeps::from_aws).await,
        Function::Events => longrun_events::run_stream().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_parses_from_its_own_name_and_nothing_else_does() {
        for function in Function::ALL {
            assert_eq!(Function::parse(function.as_str()), Some(function));
        }
        for name in ["", "Submit", "worker ", "slow-worker", "bootstrap"] {
            assert_eq!(Function::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn an_unknown_function_is_refused_with_the_names_it_could_be() {
        let err = BootstrapError::UnknownFunction { given: "nope".into() }.to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("dead-letter") && err.contains(FUNCTION_VAR),
            "{err}"
        );
    }
}
