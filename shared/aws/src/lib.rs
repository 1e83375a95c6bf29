//! AWS adapters of the ports: DynamoDB for job records, SQS for the work
//! queues, S3 for inputs and results. Clients are built once per process:
//! [`AwsClients::for_lambda`] in the functions (Lambda's environment only),
//! [`AwsClients::load`] in the tools (the SDK's chains), both over the one
//! HTTPS client of [`http`]; `AWS_ENDPOINT_URL` points them at an emulator
//! (moto, LocalStack) instead of AWS.

mod dynamo;
mod faults;
pub mod http;
mod s3;
mod sqs;

pub use dynamo::{
    due_shard, due_shards, owner_shard, owner_shards, DynamoJobStore, DUE_INDEX, DUE_SHARDS, LEGACY_OWNER_INDEX,
    OWNER_INDEX, OWNER_SHARDS,
};
pub use faults::FaultInjector;
pub use s3::S3ObjectStore;
pub use sqs::SqsJobQueue;

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_types::timeout::TimeoutConfig;

use longrun_core::config::Config;

/// Time limits on every SDK call, so that a request that hangs (a stalled
/// connection, a black-holed endpoint) fails instead of stalling the caller
/// — above all the worker's heartbeat, which must learn in time that it
/// could not extend its lease. Each attempt is bounded, and the whole
/// operation with the SDK's retries (3 attempts in its standard mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdkTimeouts {
    /// Opening a connection.
    pub connect: Duration,
    /// One attempt of a DynamoDB or SQS call.
    pub attempt: Duration,
    /// A DynamoDB or SQS call with its retries.
    pub operation: Duration,
    /// One attempt of an S3 call (until its response starts; a streamed
    /// body is read after it, under the job's own deadline).
    pub object_attempt: Duration,
    /// An S3 call with its retries.
    pub object_operation: Duration,
}

impl Default for SdkTimeouts {
    /// 3 s to connect; DynamoDB and SQS 5 s an attempt, 12 s in all (well
    /// inside a 60 s lease); S3 60 s an attempt, 150 s in all (results of
    /// a few MB on a slow link).
    fn default() -> Self {
        SdkTimeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(5),
            operation: Duration::from_secs(12),
            object_attempt: Duration::from_secs(60),
            object_operation: Duration::from_secs(150),
        }
    }
}

impl SdkTimeouts {
    fn records(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    fn objects(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.object_attempt)
            .operation_timeout(self.object_operation)
            .build()
    }
}

/// The SDK clients a process needs, built once in `main`.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// For the jobs table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// For the work queues.
    pub sqs: aws_sdk_sqs::Client,
    /// For the jobs bucket; path-style when an endpoint is overridden.
    pub s3: aws_sdk_s3::Client,
    /// Bytes per second the object store serves reads at (the fault
    /// `SlowReads`); 0: as fast as S3 sends.
    pub read_rate: u64,
}

impl AwsClients {
    /// Loads region, credentials and endpoint the standard way (env, profile,
    /// SSO, instance role: [`http::load_sdk_config`]), for the tools. With an
    /// endpoint override S3 uses path-style addressing, which emulators on
    /// `localhost` need. `FAULT_INJECTION` installs a [`FaultInjector`]; an
    /// invalid value panics at start-up, loudly.
    pub async fn load() -> Self {
        Self::with_env_faults(&http::load_sdk_config().await)
    }

    /// The clients of a function on Lambda: configuration from Lambda's
    /// environment alone ([`http::lambda_sdk_config`]), nothing probed.
    /// `FAULT_INJECTION` as for [`AwsClients::load`].
    pub fn for_lambda() -> Result<Self, http::LambdaSdkConfigError> {
        Ok(Self::with_env_faults(&http::lambda_sdk_config()?))
    }

    /// Clients from `shared` with the fault injection `FAULT_INJECTION`
    /// names (none when unset); an invalid value panics.
    fn with_env_faults(shared: &aws_config::SdkConfig) -> Self {
        let faults = FaultInjector::from_env().unwrap_or_else(|e| panic!("FAULT_INJECTION: {e}"));
        Self::with_faults(shared, faults)
    }

    /// Clients from an SDK configuration already loaded, without fault injection.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig) -> Self {
        Self::with_faults(shared, None)
    }

    /// Clients that fail calls as `faults` says (none when `None`), with the
    /// default [`SdkTimeouts`].
    pub fn with_faults(shared: &aws_config::SdkConfig, faults: Option<FaultInjector>) -> Self {
        Self::build(shared, faults, SdkTimeouts::default())
    }

    /// Clients that fail calls as `faults` says, each call bounded by `timeouts`.
    pub fn build(shared: &aws_config::SdkConfig, faults: Option<FaultInjector>, timeouts: SdkTimeouts) -> Self {
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(shared).timeout_config(timeouts.records());
        let mut sqs = aws_sdk_sqs::config::Builder::from(shared).timeout_config(timeouts.records());
        let mut s3 = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(shared.endpoint_url().is_some())
            .timeout_config(timeouts.objects());
        let read_rate = faults.as_ref().map_or(0, FaultInjector::read_rate);
        if let Some(faults) = faults {
            dynamodb = dynamodb.interceptor(faults.clone());
            sqs = sqs.interceptor(faults.clone());
            s3 = s3.interceptor(faults);
        }
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            read_rate,
        }
    }

    /// The [`JobStore`](longrun_core::ports::JobStore) on the `JOBS_TABLE` table.
    /// Ending a job releases its quota slot when `MAX_ACTIVE_JOBS_PER_OWNER` is above 0.
    pub fn job_store(&self, config: &Config) -> Arc<DynamoJobStore> {
        Arc::new(
            DynamoJobStore::new(self.dynamodb.clone(), &config.jobs_table, config.job_retention_seconds)
                .with_owner_quotas(config.max_active_jobs_per_owner > 0),
        )
    }

    /// The [`JobQueue`](longrun_core::ports::JobQueue) over the `QUEUE_URLS` queues.
    pub fn job_queue(&self, config: &Config) -> Arc<SqsJobQueue> {
        Arc::new(SqsJobQueue::new(self.sqs.clone(), config.queue_urls.clone()))
    }

    /// The [`ObjectStore`](longrun_core::ports::ObjectStore) on the `JOBS_BUCKET` bucket.
    pub fn object_store(&self, config: &Config) -> Arc<S3ObjectStore> {
        Arc::new(S3ObjectStore::new(self.s3.clone(), &config.jobs_bucket).with_read_rate(self.read_rate))
    }
}

/// Full text of an SDK error, with its source chain.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}
