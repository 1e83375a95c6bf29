//! The reference for cold starts: the smallest `lambda_runtime` function
//! (it answers each event with the event), built with the release profile
//! the functions use. `make bench` times its Init against theirs.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
