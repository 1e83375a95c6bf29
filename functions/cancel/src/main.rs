//! The cancel Lambda: the shared bootstrap serves API Gateway events with the
//! clients built once.

use longrun_cancel::CancelDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_http(CancelDeps::from_aws).await
}
