//! The standard app: every function of the template, running longrun's own
//! job types (`report`, `thumbnail`, and `sleep` where enabled).

use longrun::job_types::Registry;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun_bootstrap::run(Registry::standard).await
}
