//! The webhook Lambda: the shared bootstrap serves the webhook queue's
//! batches with the clients built once.

use longrun_webhook::WebhookDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_sqs(WebhookDeps::from_aws).await
}
