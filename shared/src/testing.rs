//! Support for unit tests of the functions: a complete configuration over
//! made-up resource names, built through the same parser the functions use.

use std::collections::BTreeMap;

use crate::config::Config;

/// A valid configuration (queues `fast` and `slow`, thumbnails routed to
/// `slow`, the `sleep` job enabled), with `overrides` applied on top.
pub fn config(overrides: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<String, String> = [
        ("JOBS_TABLE", "jobs"),
        ("JOBS_BUCKET", "bucket"),
        (
            "QUEUE_URLS",
            "fast=http://sqs.local/1/longrun-fast,slow=http://sqs.local/1/longrun-slow",
        ),
        ("JOB_QUEUES", "thumbnail=slow"),
        ("ENABLE_SLEEP_JOB", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid")
}
