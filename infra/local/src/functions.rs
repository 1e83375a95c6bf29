//! The template's functions, wired to the same handler functions the
//! Lambdas run, each with its own configuration built from its resolved
//! template environment (as Lambda would set it), over clients built once.
//! Each function is reached through the trait of its trigger
//! ([`HttpFunction`], [`SqsFunction`], [`ScheduledFunction`]), the same
//! traits the Lambda bootstrap serves; its `LONGRUN_FUNCTION` picks it here,
//! once, as it picks it in `longrun_bootstrap::run`, and submit and the
//! workers run the app's job types ([`Options::job_types`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use longrun_aws::{AwsClients, FaultInjector};
use longrun_bootstrap::Function;
use longrun_cancel::CancelDeps;
use longrun_core::job_types::Registry;
use longrun_core::Config;
use longrun_dead_letter::DeadLetterDeps;
use longrun_events::EventsDeps;
use longrun_lambda::{HttpFunction, ScheduledFunction, SqsFunction};
use longrun_reconciler::ReconcilerDeps;
use longrun_status::StatusDeps;
use longrun_submit::{SchedulerDeps, SubmitDeps};
use longrun_webhook::WebhookDeps;
use longrun_worker::WorkerDeps;

use crate::resources::{Deployed, Error};
use crate::template::{FunctionSpec, Template};
use crate::{JobTypes, Options};

/// A function's handler, behind the trait of the trigger it serves.
#[derive(Clone)]
pub enum Trigger {
    /// Behind the HTTP API.
    Http(Arc<dyn HttpFunction>),
    /// Fed by an SQS event source mapping.
    Sqs(Arc<dyn SqsFunction>),
    /// Run on a schedule.
    Schedule(Arc<dyn ScheduledFunction>),
    /// Served through a function URL whose answer streams (the events function).
    Stream(Arc<EventsDeps>),
}

/// One function of the template, ready to invoke.
pub struct LocalFunction {
    /// What the template says of it.
    pub spec: FunctionSpec,
    /// Its environment, resolved.
    pub environment: BTreeMap<String, String>,
    /// Its handler, by trigger.
    pub trigger: Trigger,
    /// The ARN it would have on AWS.
    pub arn: String,
    /// The job types it runs or admits (submit and the worker), built once
    /// from its own configuration.
    pub registry: Option<Arc<Registry>>,
    /// Its `ReservedConcurrentExecutions`, as permits: an invocation over it
    /// is throttled, as Lambda does (`None`: unbounded).
    pub concurrency: Option<Arc<tokio::sync::Semaphore>>,
}

impl LocalFunction {
    /// The handler, when the function serves the HTTP API.
    pub fn http(&self) -> Option<&Arc<dyn HttpFunction>> {
        match &self.trigger {
            Trigger::Http(function) => Some(function),
            _ => None,
        }
    }

    /// The handler, when an SQS event source mapping feeds the function.
    pub fn sqs(&self) -> Option<&Arc<dyn SqsFunction>> {
        match &self.trigger {
            Trigger::Sqs(function) => Some(function),
            _ => None,
        }
    }

    /// The handler, when the function's URL streams its answers.
    pub fn stream(&self) -> Option<&Arc<EventsDeps>> {
        match &self.trigger {
            Trigger::Stream(function) => Some(function),
            _ => None,
        }
    }

    /// The handler, when the function runs on a schedule.
    pub fn scheduled(&self) -> Option<&Arc<dyn ScheduledFunction>> {
        match &self.trigger {
            Trigger::Schedule(function) => Some(function),
            _ => None,
        }
    }
}

/// The handler of the function `function` names (parsed as
/// `longrun_bootstrap::run` parses `LONGRUN_FUNCTION`), wired to its
/// configuration, its clients and the app's job types, with the registry it
/// was given (submit and the worker).
fn trigger(
    function: &str,
    config: Arc<Config>,
    clients: &AwsClients,
    job_types: &JobTypes,
) -> Option<(Trigger, Option<Arc<Registry>>)> {
    let registry = || Arc::new(job_types(&config));
    Some(match Function::parse(function)? {
        Function::Submit => {
            let registry = registry();
            let deps = SubmitDeps::from_aws(config.clone(), clients, registry.clone());
            (Trigger::Http(Arc::new(deps)), Some(registry))
        }
        Function::Scheduler => {
            let registry = registry();
            let deps = SchedulerDeps::from_aws(config.clone(), clients, registry.clone());
            (Trigger::Schedule(Arc::new(deps)), Some(registry))
        }
        Function::Status => (Trigger::Http(Arc::new(StatusDeps::from_aws(config, clients))), None),
        Function::Cancel => (Trigger::Http(Arc::new(CancelDeps::from_aws(config, clients))), None),
        Function::Worker => {
            let registry = registry();
            let deps = WorkerDeps::from_aws(config.clone(), clients, registry.clone());
            (Trigger::Sqs(Arc::new(deps)), Some(registry))
        }
        Function::DeadLetter => (Trigger::Sqs(Arc::new(DeadLetterDeps::from_aws(config, clients))), None),
        Function::Reconciler => (
            Trigger::Schedule(Arc::new(ReconcilerDeps::from_aws(config, clients))),
            None,
        ),
        Function::Webhook => (Trigger::Sqs(Arc::new(WebhookDeps::from_aws(config, clients))), None),
        Function::Events => (Trigger::Stream(Arc::new(EventsDeps::from_aws(config, clients))), None),
    })
}

/// Builds every function of the template. `options.faults` adds `FAULT_INJECTION`
/// to the environment of the functions it names (logical id → rules); a
/// function with `FAULT_INJECTION` gets clients of its own that fail as told.
pub fn build(
    template: &Template,
    deployed: &Deployed,
    shared: &aws_config::SdkConfig,
    clients: &AwsClients,
    options: &Options,
) -> Result<Vec<Arc<LocalFunction>>, Error> {
    template
        .functions()?
        .into_iter()
        .map(|spec| {
            let mut environment = BTreeMap::new();
            for (name, value) in &spec.environment {
                let resolved = template.resolve(value, deployed)?;
                let text = match resolved {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                environment.insert(name.clone(), text);
            }
            if let Some(rules) = options.faults.get(&spec.logical_id) {
                environment.insert("FAULT_INJECTION".into(), rules.clone());
            }
            let own_clients;
            let clients = match environment.get("FAULT_INJECTION") {
                Some(rules) => {
                    let injector = FaultInjector::parse(rules).map_err(|e| format!("{}: {e}", spec.logical_id))?;
                    tracing::warn!(function = %spec.logical_id, %rules, "fault injection on");
                    own_clients = AwsClients::with_faults(shared, Some(injector));
                    &own_clients
                }
                None => clients,
            };
            let config = Arc::new(
                Config::from_lookup({
                    let environment = environment.clone();
                    move |name| environment.get(name).cloned()
                })
                .map_err(|e| format!("function {}: {e}", spec.logical_id))?,
            );
            let (trigger, registry) =
                trigger(&spec.function, config, clients, &options.job_types).ok_or_else(|| {
                    format!(
                        "function {}: unknown LONGRUN_FUNCTION {}",
                        spec.logical_id, spec.function
                    )
                })?;
            let arn = format!(
                "arn:aws:lambda:{}:123456789012:function:{}-{}",
                deployed.region, options.stack, spec.logical_id
            );
            let concurrency = spec
                .reserved_concurrency
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize)));
            Ok(Arc::new(LocalFunction {
                concurrency,
                spec,
                environment,
                trigger,
                arn,
                registry,
            }))
        })
        .collect()
}
