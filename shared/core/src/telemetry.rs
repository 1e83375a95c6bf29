//! Tracing setup shared by every binary: JSON lines on Lambda (CloudWatch),
//! human-readable text locally; `LOG_FORMAT=json|text` overrides the choice.
//!
//! `RUST_LOG` filters by target and level (`info`, `warn,longrun=debug`):
//! the `Targets` syntax, not `EnvFilter`'s span and field directives, whose
//! regular-expression engine would be most of the logging code in every
//! function binary. An unparsable `RUST_LOG` falls back to `info`.
//!
//! Whatever `RUST_LOG` says, the crates that log what passes through them at
//! `debug` and `trace` — the Lambda runtime (raw events: bearer tokens,
//! stream tickets, job inputs), the AWS SDK and its HTTP stack (request and
//! response bodies: records, webhook secrets) — log at `info` at most, so a
//! verbose log level set to debug longrun never writes callers' secrets to
//! CloudWatch. `LOG_RAW_PAYLOADS=true` lifts that cap (unsafe; off).

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The crates whose `debug` and `trace` events carry raw payloads.
pub const PAYLOAD_LOGGING_TARGETS: [&str; 15] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "aws_sdk_sqs",
    "aws_sdk_s3",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
];

/// The filter `RUST_LOG` names; `info` when unset, empty or unparsable.
pub fn filter_from(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// `filter` with every [`PAYLOAD_LOGGING_TARGETS`] crate capped at `info`
/// (a level `filter` sets below `info` for one of them is kept).
pub fn without_raw_payloads(filter: Targets) -> Targets {
    PAYLOAD_LOGGING_TARGETS.iter().fold(filter, |filter, target| {
        let level = filter
            .iter()
            .find(|(named, _)| named == target)
            .map(|(_, level)| level)
            .unwrap_or_else(|| filter.default_level().unwrap_or(LevelFilter::INFO));
        filter.with_target(*target, level.min(LevelFilter::INFO))
    })
}

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
    let filter = match std::env::var("LOG_RAW_PAYLOADS").as_deref() {
        Ok("true") => filter,
        _ => without_raw_payloads(filter),
    };
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => on_lambda,
    };
    let layer = tracing_subscriber::fmt::layer().with_target(false);
    let _ = if json {
        tracing_subscriber::registry()
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .without_time()
                    .with_filter(filter),
            )
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_by_target_and_defaults_to_info() {
        let default = filter_from(None);
        assert!(default.would_enable("longrun", &Level::INFO));
        assert!(!default.would_enable("longrun", &Level::DEBUG));
        assert_eq!(filter_from(Some("  ")).default_level(), Some(LevelFilter::INFO));
        assert_eq!(
            filter_from(Some("not a filter=+")).default_level(),
            Some(LevelFilter::INFO)
        );

        let mixed = filter_from(Some("warn,longrun=debug"));
        let capped = without_raw_payloads(mixed.clone());
        assert!(
            capped.would_enable("longrun_aws", &Level::DEBUG),
            "longrun's own level stands"
        );
        assert!(
            !capped.would_enable("aws_smithy_runtime", &Level::INFO),
            "a lower level stands"
        );
        assert!(mixed.would_enable("longrun_aws", &Level::DEBUG));
        assert!(!mixed.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(mixed.would_enable("aws_smithy_runtime", &Level::WARN));
    }

    #[test]
    fn a_verbose_level_never_reaches_the_crates_that_log_raw_payloads() {
        let cases = [
            ("trace", "lambda_runtime", Level::DEBUG, false),
            ("trace", "aws_smithy_runtime::client::orchestrator", Level::TRACE, false),
            ("trace", "hyper_util::client", Level::DEBUG, false),
            ("trace", "lambda_runtime", Level::INFO, true),
            ("trace", "longrun_worker::heartbeat", Level::TRACE, true),
            ("trace", "activity_report", Level::TRACE, true),
            ("debug,lambda_runtime=trace", "lambda_runtime", Level::TRACE, false),
            ("warn", "lambda_runtime", Level::INFO, false),
        ];
        for (rust_log, target, level, enabled) in cases {
            let filter = without_raw_payloads(filter_from(Some(rust_log)));
            assert_eq!(
                filter.would_enable(target, &level),
                enabled,
                "RUST_LOG={rust_log}: {target} at {level}"
            );
        }
    }
}
