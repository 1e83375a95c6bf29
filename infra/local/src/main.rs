//! `longrun-local`: runs the stack of `template.yaml` on this machine
//! against the AWS emulator at `AWS_ENDPOINT_URL` (a service's own variable,
//! such as `AWS_ENDPOINT_URL_DYNAMODB`, sends that service elsewhere: the SDK
//! prefers it, e.g. LocalStack for SQS and S3 plus DynamoDB Local).
//!
//! ```text
//! longrun-local [--template template.yaml] [--stack longrun-local] [--port 3000]
//!               [--host 127.0.0.1] [--no-workers] [--fault Function:Operation[=p] …]
//!               [--parameter-overrides K=V …]
//! ```

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    longrun_local::cli::run(Arc::new(longrun_jobs::standard)).await
}
