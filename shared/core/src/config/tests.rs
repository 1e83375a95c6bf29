//! The configuration's parsing: defaults, bounds, and every refusal named.

use super::*;
use crate::fixtures::config as test_config;

#[test]
fn reads_queues_routes_and_defaults() {
    let config = test_config(&[]);
    assert_eq!(config.queue_for("thumbnail"), "slow");
    assert_eq!(config.queue_for("report"), "fast");
    assert_eq!(config.default_max_attempts, 3);
    assert_eq!(config.max_request_bytes, 262_144);
    assert_eq!(
        config.queue_name_for_source("arn:aws:sqs:us-east-1:123456789012:longrun-slow"),
        Some("slow")
    );
    assert_eq!(
        config.queue_name_for_source("http://sqs.local/1/longrun-fast"),
        Some("fast")
    );
    assert_eq!(config.queue_name_for_source("arn:aws:sqs:us-east-1:1:other"), None);
}

#[test]
fn result_url_ttl_is_between_one_second_and_seven_days() {
    let with_ttl = |ttl: &str| {
        let ttl = ttl.to_owned();
        Config::from_lookup(move |name| match name {
            "JOBS_TABLE" => Some("t".to_owned()),
            "JOBS_BUCKET" => Some("b".to_owned()),
            "QUEUE_URLS" => Some("fast=http://q/fast".to_owned()),
            "RESULT_URL_TTL_SECONDS" => Some(ttl.clone()),
            _ => None,
        })
    };
    assert_eq!(with_ttl("1").unwrap().result_url_ttl, Duration::from_secs(1));
    assert_eq!(
        with_ttl("604800").unwrap().result_url_ttl,
        Duration::from_secs(MAX_RESULT_URL_TTL_SECONDS)
    );
    for refused in ["0", "604801", "-5"] {
        assert!(
            matches!(
                with_ttl(refused),
                Err(ConfigError::Invalid {
                    name: "RESULT_URL_TTL_SECONDS",
                    ..
                })
            ),
            "{refused}"
        );
    }
}

#[test]
fn rejects_missing_and_malformed_values() {
    let base = |extra: &[(&str, &str)]| {
        let mut vars: BTreeMap<String, String> = [
            ("JOBS_TABLE", "t"),
            ("JOBS_BUCKET", "b"),
            ("QUEUE_URLS", "fast=http://q/fast"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Config::from_lookup(move |name| vars.get(name).cloned())
    };
    assert!(base(&[]).is_ok());
    assert!(matches!(
        base(&[("JOBS_TABLE", "")]),
        Err(ConfigError::Missing("JOBS_TABLE"))
    ));
    assert!(matches!(
        base(&[("DEFAULT_MAX_ATTEMPTS", "x")]),
        Err(ConfigError::Invalid {
            name: "DEFAULT_MAX_ATTEMPTS",
            ..
        })
    ));
    assert!(matches!(
        base(&[("DEFAULT_MAX_ATTEMPTS", "9")]),
        Err(ConfigError::Invalid {
            name: "DEFAULT_MAX_ATTEMPTS",
            ..
        })
    ));
    assert!(matches!(
        base(&[("QUEUE_URLS", "fast")]),
        Err(ConfigError::Invalid { .. })
    ));
    assert!(matches!(
        base(&[("JOB_QUEUES", "report=slow")]),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn job_type_settings_are_read_from_the_same_environment_and_refused_by_name() {
    let settings = test_config(&[("MY_LIMIT", "7"), ("MY_ZERO", "0"), ("MY_FLAG", "yes")]).settings;
    assert_eq!(settings.number("MY_LIMIT", 1u32).unwrap(), 7);
    assert_eq!(
        settings.number("UNSET_LIMIT", 3u32).unwrap(),
        3,
        "the default when unset"
    );
    assert!(matches!(
        settings.positive("MY_ZERO", 5u64),
        Err(ConfigError::Invalid { name: "MY_ZERO", .. })
    ));
    assert!(matches!(
        settings.number::<u32>("MY_FLAG", 1),
        Err(ConfigError::Invalid { name: "MY_FLAG", .. })
    ));
    assert!(matches!(
        settings.flag("MY_FLAG"),
        Err(ConfigError::Invalid { name: "MY_FLAG", .. })
    ));
    assert!(settings.flag("ENABLE_SLEEP_JOB").unwrap(), "the fixture enables sleep");
    assert_eq!(format!("{settings:?}"), "Settings(..)", "no value shows");
}
