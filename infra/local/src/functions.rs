//! The template's functions, wired to the same handler functions the
//! Lambdas run, each with its own configuration built from its resolved
//! template environment (as Lambda would set it), over clients built once.

use std::collections::BTreeMap;
use std::sync::Arc;

use longrun::aws::{AwsClients, FaultInjector};
use longrun::Config;
use longrun_cancel::CancelDeps;
use longrun_dead_letter::DeadLetterDeps;
use longrun_reconciler::ReconcilerDeps;
use longrun_status::StatusDeps;
use longrun_submit::SubmitDeps;
use longrun_worker::WorkerDeps;

use crate::resources::{Deployed, Error};
use crate::template::{FunctionSpec, Template};

/// Which handler a function runs, with its dependencies.
pub enum Handler {
    Submit(SubmitDeps),
    Status(StatusDeps),
    Cancel(CancelDeps),
    Worker(WorkerDeps),
    DeadLetter(DeadLetterDeps),
    Reconciler(ReconcilerDeps),
}

/// One function of the template, ready to invoke.
pub struct LocalFunction {
    pub spec: FunctionSpec,
    pub environment: BTreeMap<String, String>,
    pub handler: Handler,
    pub arn: String,
}

/// Builds every function of the template. `faults` adds `FAULT_INJECTION`
/// to the environment of the functions it names (logical id → rules); a
/// function with `FAULT_INJECTION` gets clients of its own that fail as told.
pub fn build(
    template: &Template,
    deployed: &Deployed,
    shared: &aws_config::SdkConfig,
    clients: &AwsClients,
    stack: &str,
    faults: &BTreeMap<String, String>,
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
            if let Some(rules) = faults.get(&spec.logical_id) {
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
                Config::from_lookup(|name| environment.get(name).cloned())
                    .map_err(|e| format!("function {}: {e}", spec.logical_id))?,
            );
            let handler = match spec.binary.as_str() {
                "submit" => Handler::Submit(SubmitDeps::from_aws(config, clients)),
                "status" => Handler::Status(StatusDeps::from_aws(config, clients)),
                "cancel" => Handler::Cancel(CancelDeps::from_aws(config, clients)),
                "worker" => Handler::Worker(WorkerDeps::from_aws(config, clients)),
                "dead-letter" => Handler::DeadLetter(DeadLetterDeps::from_aws(config, clients)),
                "reconciler" => Handler::Reconciler(ReconcilerDeps::from_aws(config, clients)),
                other => return Err(format!("function {}: unknown binary {other}", spec.logical_id).into()),
            };
            let arn = format!(
                "arn:aws:lambda:{}:123456789012:function:{stack}-{}",
                deployed.region, spec.logical_id
            );
            Ok(Arc::new(LocalFunction {
                spec,
                environment,
                handler,
                arn,
            }))
        })
        .collect()
}
