//! The local runtime (`longrun-local`'s command line) with this app's job
//! types: `activity-report-local --port 3000` against an emulator.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    longrun_local::cli::run(Arc::new(activity_report::registry)).await
}
