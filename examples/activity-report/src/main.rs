//! The app's one Lambda binary: every function of the template plays it
//! (the template sets `LONGRUN_FUNCTION`), with this app's job types.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun_bootstrap::run(activity_report::registry).await
}
