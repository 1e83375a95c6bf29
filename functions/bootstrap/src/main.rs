//! The standard app: every function of the template, running longrun's own
//! job types (`report`, `thumbnail`, and `sleep` where enabled).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    longrun_bootstrap::run(longrun_jobs::standard).await
}
