//! The status Lambda: the shared bootstrap serves API Gateway events with the
//! clients built once.

use longrun_status::StatusDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_http(StatusDeps::from_aws).await
}
