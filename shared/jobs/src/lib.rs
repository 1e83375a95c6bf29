//! `longrun-jobs`: the job types longrun ships, written against
//! `longrun-core`'s job API exactly as an app's own job types are:
//! [`report`] (a CSV aggregated while it streams), [`thumbnail`] (resized
//! variants of an image) and [`sleep`] (a test job that sleeps, checkpoints
//! and fails on request). Each reads its own limits ([`ReportLimits`],
//! [`ThumbnailLimits`]) from the configuration.

pub mod report;
pub mod sleep;
pub mod thumbnail;

pub use report::{ReportJob, ReportLimits};
pub use sleep::SleepJob;
pub use thumbnail::{ThumbnailJob, ThumbnailLimits};

use std::sync::Arc;

use longrun_core::config::Config;
use longrun_core::job_types::Registry;

/// Every job type longrun ships, as configured (`sleep` only with
/// `ENABLE_SLEEP_JOB`): the registry of the standard app. An app adds its
/// own job types to it, or starts from [`Registry::default`].
pub fn standard(config: &Config) -> Registry {
    let mut registry = Registry::default();
    registry.register(Arc::new(ReportJob::new(ReportLimits::from_config(config))));
    registry.register(Arc::new(ThumbnailJob::new(ThumbnailLimits::from_config(config))));
    if config.enable_sleep_job {
        registry.register(Arc::new(SleepJob));
    }
    registry
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::SleepJob;
    use longrun_core::job_types::testing::harness;
    use longrun_core::job_types::JobHandler;
    use longrun_core::record::codes;

    #[test]
    fn a_malformed_input_is_refused_at_submit_as_a_field_error_on_input() {
        let errors = SleepJob.validate(&json!({"secs": 1})).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "input");
        assert!(
            errors[0].message.contains("unknown field `secs`"),
            "{}",
            errors[0].message
        );
    }

    #[tokio::test]
    async fn a_malformed_input_that_reaches_the_worker_fails_the_job_permanently() {
        let input = json!({"secs": 1});
        let h = harness(input.clone(), None).await;
        let err = SleepJob.run(&h.ctx, &input).await.unwrap_err();
        assert_eq!((err.code.as_str(), err.retryable), (codes::INVALID_INPUT, false));
        assert!(err.message.contains("unknown field `secs`"), "{}", err.message);
    }
}
