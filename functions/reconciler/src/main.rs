//! The reconciler Lambda: builds its clients once and runs on its schedule.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use longrun::aws::AwsClients;
use longrun::time::now_ms;
use longrun::Config;
use longrun_reconciler::{handle, ReconcilerDeps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    longrun::telemetry::init();
    let config = Arc::new(Config::from_env()?);
    let deps = Arc::new(ReconcilerDeps::from_aws(config, &AwsClients::load().await));
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let deps = deps.clone();
        async move { Ok::<_, Error>(handle(&deps, now_ms()).await?) }
    }))
    .await
}
