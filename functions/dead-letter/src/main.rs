//! The dead-letter Lambda: builds its clients once and serves DLQ batches.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use longrun::aws::AwsClients;
use longrun::Config;
use longrun_dead_letter::{handle, DeadLetterDeps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    longrun::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let deps = Arc::new(DeadLetterDeps::from_aws(config, &AwsClients::load().await));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, event.payload).await) }
    }))
    .await
}
