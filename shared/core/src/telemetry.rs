//! Tracing setup shared by every binary: JSON lines on Lambda (CloudWatch),
//! human-readable text locally; `LOG_FORMAT=json|text` overrides the choice.
//!
//! `RUST_LOG` filters by target and level (`info`, `warn,longrun=debug`):
//! the `Targets` syntax, not `EnvFilter`'s span and field directives, whose
//! regular-expression engine would be most of the logging code in every
//! function binary. An unparsable `RUST_LOG` falls back to `info`.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The filter `RUST_LOG` names; `info` when unset, empty or unparsable.
pub fn filter_from(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the global subscriber once; later calls are no-ops.
pub fn init() {
    let filter = filter_from(std::env::var("RUST_LOG").ok().as_deref());
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
        assert!(mixed.would_enable("longrun_aws", &Level::DEBUG));
        assert!(!mixed.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(mixed.would_enable("aws_smithy_runtime", &Level::WARN));
    }
}
