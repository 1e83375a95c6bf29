//! The worker Lambda: builds its clients once and serves SQS batches.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use longrun::aws::AwsClients;
use longrun::Config;
use longrun_worker::{handle, WorkerDeps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    longrun::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let deps = Arc::new(WorkerDeps::from_aws(config, &AwsClients::load().await));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, event.payload, &event.context).await) }
    }))
    .await
}
