//! `longrun-local`: the whole system on one machine, against an AWS
//! emulator. It reads `template.yaml` ([`template`]), creates its tables,
//! queues and buckets on the emulator ([`resources`]), wires every function
//! to the same handler functions the Lambdas run ([`functions`]), serves
//! the HTTP API as API Gateway would ([`api`]) and feeds the workers as the
//! SQS event source mapping would ([`event_source`]).

pub mod api;
pub mod event_source;
pub mod functions;
pub mod resources;
pub mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use longrun::aws::AwsClients;

pub use resources::Error;

/// How to run the local stack.
#[derive(Clone, Debug)]
pub struct Options {
    pub template: PathBuf,
    pub stack: String,
    pub parameter_overrides: BTreeMap<String, String>,
    /// Start the SQS pollers (workers); off to run only the API.
    pub workers: bool,
}

/// A running local stack: the HTTP app and the poller tasks.
pub struct LocalStack {
    pub api: Arc<api::LocalApi>,
    pub functions: Vec<Arc<functions::LocalFunction>>,
    pub pollers: Vec<tokio::task::JoinHandle<()>>,
}

/// Creates the resources and wires the functions; starts the pollers.
pub async fn start(options: &Options, clients: &AwsClients, region: &str) -> Result<LocalStack, Error> {
    let template = template::Template::load(&options.template, &options.parameter_overrides)?;
    let deployed = resources::deploy(&template, clients, &options.stack, region).await?;
    let functions = functions::build(&template, &deployed, clients, &options.stack)?;
    let mut routes = Vec::new();
    let mut pollers = Vec::new();
    for function in &functions {
        for route in &function.spec.http_routes {
            tracing::info!(method = %route.method, path = %route.path, function = %function.spec.logical_id, "route");
            routes.push(api::Route {
                method: route.method.clone(),
                path: route.path.clone(),
                function: function.clone(),
            });
        }
        if !options.workers {
            continue;
        }
        for source in &function.spec.sqs_sources {
            let queue_url = deployed.refs[&source.queue_logical_id].clone();
            tracing::info!(
                queue = %source.queue_logical_id,
                function = %function.spec.logical_id,
                batch_size = source.batch_size,
                concurrency = source.max_concurrency,
                timeout_seconds = function.spec.timeout_seconds,
                "event source"
            );
            pollers.extend(event_source::start(
                event_source::EventSource {
                    queue_arn: deployed.arns[&source.queue_logical_id].clone(),
                    queue_url,
                    batch_size: source.batch_size,
                    concurrency: source.max_concurrency,
                    function: function.clone(),
                    region: region.to_owned(),
                },
                clients.clone(),
            ));
        }
    }
    Ok(LocalStack {
        api: Arc::new(api::LocalApi { routes, deployed }),
        functions,
        pollers,
    })
}
