//! The dead-letter Lambda: the shared bootstrap serves the dead-letter
//! queues' batches with the clients built once.

use longrun_dead_letter::DeadLetterDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_sqs(DeadLetterDeps::from_aws).await
}
