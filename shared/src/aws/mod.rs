//! AWS adapters of the ports: DynamoDB for job records, SQS for the work
//! queues, S3 for inputs and results. Clients are built once per process
//! ([`AwsClients::load`]); `AWS_ENDPOINT_URL` (honoured by the SDK itself)
//! points them at an emulator (moto, LocalStack) instead of AWS.

mod dynamo;
mod faults;
mod s3;
mod sqs;

pub use dynamo::{due_shard, due_shards, DynamoJobStore, DUE_INDEX, DUE_SHARDS, OWNER_INDEX};
pub use faults::FaultInjector;
pub use s3::S3ObjectStore;
pub use sqs::SqsJobQueue;

use std::sync::Arc;

use crate::config::Config;

/// The SDK clients a process needs, built once in `main`.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// For the jobs table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// For the work queues.
    pub sqs: aws_sdk_sqs::Client,
    /// For the jobs bucket; path-style when an endpoint is overridden.
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Loads region, credentials and endpoint the standard way (env, profile,
    /// Lambda role). With an endpoint override S3 uses path-style addressing,
    /// which emulators on `localhost` need. `FAULT_INJECTION` installs a
    /// [`FaultInjector`]; an invalid value panics at start-up, loudly.
    pub async fn load() -> Self {
        let shared = aws_config::load_from_env().await;
        let faults = FaultInjector::from_env().unwrap_or_else(|e| panic!("FAULT_INJECTION: {e}"));
        Self::with_faults(&shared, faults)
    }

    /// Clients from an SDK configuration already loaded, without fault injection.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig) -> Self {
        Self::with_faults(shared, None)
    }

    /// Clients that fail calls as `faults` says (none when `None`).
    pub fn with_faults(shared: &aws_config::SdkConfig, faults: Option<FaultInjector>) -> Self {
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(shared);
        let mut sqs = aws_sdk_sqs::config::Builder::from(shared);
        let mut s3 = aws_sdk_s3::config::Builder::from(shared).force_path_style(shared.endpoint_url().is_some());
        if let Some(faults) = faults {
            dynamodb = dynamodb.interceptor(faults.clone());
            sqs = sqs.interceptor(faults.clone());
            s3 = s3.interceptor(faults);
        }
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
        }
    }

    /// The [`JobStore`](crate::ports::JobStore) on the `JOBS_TABLE` table.
    pub fn job_store(&self, config: &Config) -> Arc<DynamoJobStore> {
        Arc::new(DynamoJobStore::new(
            self.dynamodb.clone(),
            &config.jobs_table,
            config.job_retention_seconds,
        ))
    }

    /// The [`JobQueue`](crate::ports::JobQueue) over the `QUEUE_URLS` queues.
    pub fn job_queue(&self, config: &Config) -> Arc<SqsJobQueue> {
        Arc::new(SqsJobQueue::new(self.sqs.clone(), config.queue_urls.clone()))
    }

    /// The [`ObjectStore`](crate::ports::ObjectStore) on the `JOBS_BUCKET` bucket.
    pub fn object_store(&self, config: &Config) -> Arc<S3ObjectStore> {
        Arc::new(S3ObjectStore::new(self.s3.clone(), &config.jobs_bucket))
    }
}

/// Full text of an SDK error, with its source chain.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}
