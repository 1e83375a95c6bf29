//! The template's functions, wired to the same handler functions the
//! Lambdas run, each with its own configuration built from its resolved
//! template environment (as Lambda would set it), over clients built once.

use std::collections::BTreeMap;
use std::sync::Arc;

use longrun::aws::AwsClients;
use longrun::Config;
use longrun_status::StatusDeps;
use longrun_submit::SubmitDeps;
use longrun_worker::WorkerDeps;

use crate::resources::{Deployed, Error};
use crate::template::{FunctionSpec, Template};

/// Which handler a function runs, with its dependencies.
pub enum Handler {
    Submit(SubmitDeps),
    Status(StatusDeps),
    Worker(WorkerDeps),
}

/// One function of the template, ready to invoke.
pub struct LocalFunction {
    pub spec: FunctionSpec,
    pub environment: BTreeMap<String, String>,
    pub handler: Handler,
    pub arn: String,
}

/// Builds every function of the template.
pub fn build(
    template: &Template,
    deployed: &Deployed,
    clients: &AwsClients,
    stack: &str,
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
            let config = Arc::new(
                Config::from_lookup(|name| environment.get(name).cloned())
                    .map_err(|e| format!("function {}: {e}", spec.logical_id))?,
            );
            let handler = match spec.binary.as_str() {
                "submit" => Handler::Submit(SubmitDeps::from_aws(config, clients)),
                "status" => Handler::Status(StatusDeps::from_aws(config, clients)),
                "worker" => Handler::Worker(WorkerDeps::from_aws(config, clients)),
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
