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
    assert_eq!(config.max_image_memory_bytes, 256 * 1024 * 1024);
    assert_eq!(config.max_csv_record_bytes, 1024 * 1024);
    assert_eq!(config.max_report_groups, 100_000);
    assert!(config.enable_sleep_job);
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
        Config::from_lookup(|name| match name {
            "JOBS_TABLE" => Some("t".to_owned()),
            "JOBS_BUCKET" => Some("b".to_owned()),
            "QUEUE_URLS" => Some("fast=http://q/fast".to_owned()),
            "RESULT_URL_TTL_SECONDS" => Some(ttl.to_owned()),
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
        let mut vars: BTreeMap<&str, String> = [
            ("JOBS_TABLE", "t"),
            ("JOBS_BUCKET", "b"),
            ("QUEUE_URLS", "fast=http://q/fast"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert(k, (*v).to_owned());
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
    assert!(matches!(
        base(&[("ENABLE_SLEEP_JOB", "yes")]),
        Err(ConfigError::Invalid { .. })
    ));
    for limit in ["MAX_IMAGE_MEMORY_BYTES", "MAX_CSV_RECORD_BYTES", "MAX_REPORT_GROUPS"] {
        assert!(
            matches!(base(&[(limit, "0")]), Err(ConfigError::Invalid { name, .. }) if name == limit),
            "{limit}=0 accepted"
        );
    }
}
