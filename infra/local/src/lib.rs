//! `longrun-local`: the whole system on one machine, against an AWS
//! emulator. It reads `template.yaml` ([`template`]), creates its tables,
//! queues and buckets on the emulator ([`resources`]), wires every function
//! to the same handler functions the Lambdas run ([`functions`]), serves
//! the HTTP API as API Gateway would ([`api`]) and feeds the workers as the
//! SQS event source mapping would ([`event_source`]), and serves the API's
//! OpenAPI document ([`openapi`]).

pub mod api;
pub mod cli;
pub mod cors;
pub mod event_source;
pub mod functions;
pub mod jwt;
pub mod openapi;
pub mod resources;
pub mod schedule;
pub mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use longrun_aws::AwsClients;
use longrun_core::job_types::Registry;

pub use resources::Error;

/// Makes the job types submit and the workers run, from each function's
/// configuration (as `longrun_bootstrap::run` does on Lambda).
pub type JobTypes = Arc<dyn Fn(&longrun_core::Config) -> Registry + Send + Sync>;

/// How to run the local stack.
#[derive(Clone)]
pub struct Options {
    /// The SAM template to read.
    pub template: PathBuf,
    /// The stack name resources are named after.
    pub stack: String,
    /// Template parameters, as `sam deploy --parameter-overrides` takes them.
    pub parameter_overrides: BTreeMap<String, String>,
    /// Start the SQS pollers and schedules; off to run only the API.
    pub workers: bool,
    /// Fault injection per function: logical id → `Operation=probability,…`.
    pub faults: BTreeMap<String, String>,
    /// The runtime's own address (`http://host:port`): function URLs resolve to it.
    pub base_url: Option<String>,
    /// The app's job types.
    pub job_types: JobTypes,
    /// A JWKS file: verify bearer tokens against it and the template's JWT
    /// authorizer (issuer, audiences) instead of taking their text as names.
    pub jwks: Option<PathBuf>,
}

/// Parses `Key=Value Key=Value …` like `sam deploy --parameter-overrides`;
/// a value may contain spaces (`ReconcilerSchedule=rate(2 seconds)`): a
/// piece without `=` belongs to the value before it.
pub fn parse_overrides(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in text.split_whitespace() {
        match piece.split_once('=') {
            Some((key, value)) if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()) => {
                pairs.push((key.to_owned(), value.to_owned()))
            }
            _ => match pairs.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(piece);
                }
                None => return Err(format!("{piece}: expected Key=Value")),
            },
        }
    }
    Ok(pairs)
}

/// A running local stack: the HTTP app and the poller tasks.
pub struct LocalStack {
    /// What the HTTP side serves.
    pub api: Arc<api::LocalApi>,
    /// Every function of the template.
    pub functions: Vec<Arc<functions::LocalFunction>>,
    /// The event source and schedule tasks.
    pub pollers: Vec<tokio::task::JoinHandle<()>>,
}

/// Creates the resources and wires the functions; starts the pollers and schedules.
pub async fn start(
    options: &Options,
    shared: &aws_config::SdkConfig,
    clients: &AwsClients,
) -> Result<LocalStack, Error> {
    let region = shared
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let region = region.as_str();
    let template = template::Template::load(&options.template, &options.stack, &options.parameter_overrides)?;
    let mut deployed = resources::deploy(&template, clients, &options.stack, region).await?;
    deployed.function_url = options.base_url.clone();
    let functions = functions::build(&template, &deployed, shared, clients, options)?;
    let mut routes = Vec::new();
    let mut pollers = Vec::new();
    let mut url_function = None;
    for function in &functions {
        if function.spec.function_url.is_some() {
            tracing::info!(function = %function.spec.logical_id, "function URL served beside the API");
            url_function = Some(function.clone());
        }
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
        for expression in &function.spec.schedules {
            let expression = template.resolve(expression, &deployed)?;
            let period = template::rate_period(expression.as_str().unwrap_or_default())?;
            tracing::info!(function = %function.spec.logical_id, ?period, "schedule");
            pollers.push(schedule::start(function.clone(), period));
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
    let authorizer = match &options.jwks {
        None => jwt::Authorizer::Unverified,
        Some(path) => {
            let (issuer, audiences) = template
                .default_jwt_authorizer(&deployed)
                .map_err(|e| format!("--jwks: the HttpApi's JWT authorizer: {e} (give JwtIssuer and JwtAudience)"))?
                .ok_or("--jwks: the template's HttpApi has no default JWT authorizer")?;
            tracing::info!(%issuer, ?audiences, jwks = %path.display(), "verifying JWTs");
            jwt::Authorizer::Jwt(jwt::JwtVerifier::from_file(path, issuer, audiences)?)
        }
    };
    let (api_cors, url_cors) = template.cors_blocks(&deployed)?;
    let url_cors = url_function
        .as_ref()
        .and_then(|f| url_cors.get(&f.spec.logical_id))
        .and_then(cors::CorsRules::from_template);
    let api_cors = cors::CorsRules::from_template(&api_cors);
    tracing::info!(?api_cors, ?url_cors, "cross-origin access");
    let openapi = serde_yaml::to_string(&openapi::document_for(&submit_registry(&functions)))
        .map_err(|e| format!("the OpenAPI document: {e}"))?;
    Ok(LocalStack {
        api: Arc::new(api::LocalApi {
            routes,
            openapi,
            authorizer,
            url_function,
            deployed,
            environments: functions
                .iter()
                .map(|f| (f.spec.logical_id.clone(), f.environment.clone()))
                .collect(),
            api_cors,
            url_cors,
        }),
        functions,
        pollers,
    })
}

/// The job types the submit function admits (an empty registry without a
/// submit function).
fn submit_registry(functions: &[Arc<functions::LocalFunction>]) -> Arc<Registry> {
    functions
        .iter()
        .find(|f| f.spec.function == "submit")
        .and_then(|f| f.registry.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn overrides_parse_like_sam_with_spaces_in_values() {
        let pairs = super::parse_overrides("A=1  Schedule=rate(2 seconds) B=x=y").unwrap();
        let expected = [("A", "1"), ("Schedule", "rate(2 seconds)"), ("B", "x=y")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert!(super::parse_overrides("nonsense").is_err());
    }
}
