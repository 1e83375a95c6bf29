//! The cancel Lambda: builds its clients once and serves API Gateway events.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use longrun::aws::AwsClients;
use longrun::Config;
use longrun_cancel::{handle, CancelDeps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    longrun::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let deps = Arc::new(CancelDeps::from_aws(config, &AwsClients::load().await));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, event.payload).await) }
    }))
    .await
}
