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

use longrun_core::config::{Config, ConfigError};
use longrun_core::job_types::Registry;

/// Every job type longrun ships, as configured (`sleep` only with
/// `ENABLE_SLEEP_JOB`): the registry of the standard app. An app adds its
/// own job types to it, or starts from [`Registry::default`]. Each job type
/// reads its own settings from the configuration's environment
/// ([`ReportLimits::from_config`], [`ThumbnailLimits::from_config`]).
///
/// # Panics
///
/// When one of those settings is invalid, naming it: a function must not
/// start with a job type it cannot configure (Lambda reports the panic as
/// the init's error). [`try_standard`] answers the error instead.
pub fn standard(config: &Config) -> Registry {
    try_standard(config).unwrap_or_else(|e| panic!("longrun's job types cannot start: {e}"))
}

/// [`standard`], answering an invalid setting as an error.
pub fn try_standard(config: &Config) -> Result<Registry, ConfigError> {
    let mut registry = Registry::default();
    registry.register(Arc::new(ReportJob::new(ReportLimits::from_config(config)?)));
    registry.register(Arc::new(ThumbnailJob::new(ThumbnailLimits::from_config(config)?)));
    if config.settings.flag("ENABLE_SLEEP_JOB")? {
        registry.register(Arc::new(SleepJob));
    }
    Ok(registry)
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

#[cfg(test)]
mod settings_tests {
    use longrun_core::config::ConfigError;
    use longrun_core::fixtures::config;

    use super::{try_standard, ReportLimits, ThumbnailLimits};

    #[test]
    fn each_job_type_reads_its_own_limits_with_defaults() {
        let defaults = config(&[]);
        assert_eq!(
            ReportLimits::from_config(&defaults).unwrap(),
            ReportLimits {
                checkpoint_every: std::time::Duration::from_secs(30),
                max_record_bytes: 1024 * 1024,
                max_groups: 100_000,
                max_group_bytes: 64 * 1024 * 1024,
            }
        );
        assert_eq!(
            ThumbnailLimits::from_config(&defaults).unwrap(),
            ThumbnailLimits {
                max_source_bytes: 40 * 1024 * 1024,
                max_image_memory_bytes: 256 * 1024 * 1024
            }
        );
        let set = config(&[("MAX_REPORT_GROUPS", "12"), ("MAX_THUMBNAIL_SOURCE_BYTES", "99")]);
        assert_eq!(ReportLimits::from_config(&set).unwrap().max_groups, 12);
        assert_eq!(ThumbnailLimits::from_config(&set).unwrap().max_source_bytes, 99);
    }

    #[test]
    fn a_bad_setting_stops_the_registry_naming_the_variable() {
        for (name, value) in [
            ("MAX_IMAGE_MEMORY_BYTES", "0"),
            ("MAX_CSV_RECORD_BYTES", "0"),
            ("MAX_REPORT_GROUPS", "many"),
            ("ENABLE_SLEEP_JOB", "yes"),
        ] {
            match try_standard(&config(&[(name, value)])) {
                Err(ConfigError::Invalid { name: named, .. }) => assert_eq!(named, name),
                Err(other) => panic!("{name}={value}: {other}"),
                Ok(_) => panic!("{name}={value} accepted"),
            }
        }
        let without_sleep = try_standard(&config(&[("ENABLE_SLEEP_JOB", "false")])).unwrap();
        assert_eq!(without_sleep.job_types(), ["report", "thumbnail"]);
        assert_eq!(
            try_standard(&config(&[])).unwrap().job_types(),
            ["report", "sleep", "thumbnail"]
        );
    }
}
