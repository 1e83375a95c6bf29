//! The worker Lambda: the shared bootstrap serves SQS batches with the
//! clients built once.

use longrun_worker::WorkerDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_sqs(WorkerDeps::from_aws).await
}
