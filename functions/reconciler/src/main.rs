//! The reconciler Lambda: the shared bootstrap runs it on its schedule with
//! the clients built once.

use longrun_reconciler::ReconcilerDeps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun::lambda::run_schedule(ReconcilerDeps::from_aws).await
}
