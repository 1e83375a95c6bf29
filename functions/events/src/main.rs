//! The events Lambda: serves a function URL in `RESPONSE_STREAM` mode, each
//! request's events streamed as they happen, with the clients built once.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{service_fn, LambdaEvent, MetadataPrelude, StreamResponse};
use longrun::aws::AwsClients;
use longrun::Config;
use longrun_events::EventsDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let deps = Arc::new(EventsDeps::from_aws(config, &AwsClients::for_lambda()?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
        let deps = deps.clone();
        async move {
            let stream = longrun_events::open(&deps, &event.payload).await;
            Ok::<_, lambda_runtime::Error>(StreamResponse {
                metadata_prelude: MetadataPrelude {
                    status_code: stream.status,
                    headers: stream.headers,
                    ..Default::default()
                },
                stream: stream.body,
            })
        }
    }))
    .await
}
