//! The Lambda side of every function, written once: one trait per trigger
//! (HTTP API, SQS, schedule) that a function's dependencies implement by
//! calling its plain `handle` fn, and one bootstrap per trigger that sets up
//! tracing, reads the [`Config`], builds the AWS clients once and serves
//! events with `lambda_runtime`. `longrun_bootstrap` calls one of these per
//! role, e.g. `run_http(SubmitDeps::from_aws)`; [`apigw`] turns API Gateway
//! requests and answers into plain values for the handlers.
//!
//! The local runtime invokes the same traits, so what it serves is what
//! Lambda would run.

pub mod apigw;
pub mod fixtures;
pub mod identity;

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

use longrun_aws::AwsClients;
use longrun_core::config::Config;
use longrun_core::time::now_ms;

/// What a function invocation may fail with (the runtime reports it to Lambda).
pub type BoxError = lambda_runtime::Error;

/// A function behind the HTTP API: every error is already an HTTP answer.
#[async_trait]
pub trait HttpFunction: Send + Sync {
    /// Answers one request; a failure is a problem+json response, never an error.
    async fn call(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse;
}

/// A function fed by an SQS event source mapping with
/// `ReportBatchItemFailures`: it answers which messages come back.
#[async_trait]
pub trait SqsFunction: Send + Sync {
    /// Handles one batch; the response names the messages SQS should deliver
    /// again. `context` carries the invocation's deadline.
    async fn call(&self, event: SqsEvent, context: &lambda_runtime::Context) -> SqsBatchResponse;
}

/// A function run on a schedule at `now_ms`; it answers a report of what it did.
#[async_trait]
pub trait ScheduledFunction: Send + Sync {
    /// Runs once at `now_ms` (epoch milliseconds); an error fails the invocation.
    async fn call(&self, now_ms: i64) -> Result<serde_json::Value, BoxError>;
}

/// The batch response that returns exactly the messages `failed` names.
pub fn batch_failures(failed: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for item_identifier in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = item_identifier;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Tracing, configuration from the environment, AWS clients: once per process.
fn init<F>(build: impl FnOnce(Arc<Config>, &AwsClients) -> F) -> Result<Arc<F>, BoxError> {
    longrun_core::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    longrun_core::metrics::init(&config.metrics_namespace, None);
    Ok(Arc::new(build(config, &AwsClients::for_lambda()?)))
}

/// Serves API Gateway (HTTP API, payload v2) events with the function `build` makes.
pub async fn run_http<F: HttpFunction + 'static>(
    build: impl FnOnce(Arc<Config>, &AwsClients) -> F,
) -> Result<(), BoxError> {
    let function = init(build)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let function = function.clone();
        async move {
            let response = function.call(event.payload).await;
            longrun_core::metrics::flush();
            Ok::<_, BoxError>(response)
        }
    }))
    .await
}

/// Serves SQS batches with the function `build` makes.
pub async fn run_sqs<F: SqsFunction + 'static>(
    build: impl FnOnce(Arc<Config>, &AwsClients) -> F,
) -> Result<(), BoxError> {
    let function = init(build)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let function = function.clone();
        async move {
            let response = function.call(event.payload, &event.context).await;
            longrun_core::metrics::flush();
            Ok::<_, BoxError>(response)
        }
    }))
    .await
}

/// Serves schedule (EventBridge) events with the function `build` makes; the
/// event itself carries nothing the function needs but the time.
pub async fn run_schedule<F: ScheduledFunction + 'static>(
    build: impl FnOnce(Arc<Config>, &AwsClients) -> F,
) -> Result<(), BoxError> {
    let function = init(build)?;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let function = function.clone();
        async move {
            let result = function.call(now_ms()).await;
            longrun_core::metrics::flush();
            result
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_failures_name_exactly_the_failed_messages() {
        let response = batch_failures(["m2".to_owned(), "m5".to_owned()]);
        let ids: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["m2", "m5"]);
        assert!(batch_failures(Vec::new()).batch_item_failures.is_empty());
    }
}
