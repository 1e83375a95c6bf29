//! The submit Lambda: the shared bootstrap serves API Gateway events with the
//! clients built once.

use longrun_submit::SubmitDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_http(SubmitDeps::from_aws).await
}
