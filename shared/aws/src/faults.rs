//! Fault injection at the SDK layer, for chaos tests of the real code paths:
//! an interceptor that fails chosen AWS operations before they are sent, as
//! a network or service failure would. Configured by `FAULT_INJECTION`
//! (`Operation=probability,…`, e.g. `SendMessage=1` or `PutObject=0.2`);
//! unset, no interceptor is installed at all. One rule slows instead of
//! failing: `SlowReads=<bytes per second>` serves every object read at that
//! rate, as a slow network would (a report then takes long enough to be
//! stopped, killed and resumed mid-read).

use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use rand::Rng;

/// Fails the named operations with the given probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultInjector {
    rules: Arc<Vec<(String, f64)>>,
    /// `SlowReads`: bytes per second object reads are served at (0: not slowed).
    read_rate: u64,
}

/// The rule that slows object reads rather than failing calls.
const SLOW_READS: &str = "SlowReads";

impl FaultInjector {
    /// Parses `Operation=probability,…` (a bare `Operation` means always).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut read_rate = 0;
        let rules = spec
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .filter_map(|rule| {
                let (name, rate) = rule.split_once('=').unwrap_or((rule, ""));
                if !name.trim().eq_ignore_ascii_case(SLOW_READS) {
                    return Some(Ok(rule));
                }
                match rate.trim().parse::<u64>() {
                    Ok(n) if n > 0 => {
                        read_rate = n;
                        None
                    }
                    _ => Some(Err(format!(
                        "{rule:?}: {SLOW_READS} takes a positive number of bytes per second"
                    ))),
                }
            })
            .map(|rule| {
                let rule = rule?;
                let (operation, rate) = rule.split_once('=').unwrap_or((rule, "1"));
                let rate: f64 = rate
                    .trim()
                    .parse()
                    .map_err(|_| format!("{rule:?}: the probability must be a number"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("{rule:?}: the probability must be between 0 and 1"));
                }
                Ok((operation.trim().to_owned(), rate))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(FaultInjector {
            rules: Arc::new(rules),
            read_rate,
        })
    }

    /// Bytes per second object reads are served at (`SlowReads`; 0: as fast as they come).
    pub fn read_rate(&self) -> u64 {
        self.read_rate
    }

    /// The injector `FAULT_INJECTION` asks for, if any.
    pub fn from_env() -> Result<Option<Self>, String> {
        match std::env::var("FAULT_INJECTION") {
            Ok(spec) if !spec.trim().is_empty() => Self::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }

    /// Whether a call of `operation` fails this time.
    pub fn fails(&self, operation: &str) -> bool {
        self.rules
            .iter()
            .any(|(name, rate)| name == operation && rand::rng().random_bool(*rate))
    }
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default();
        if self.fails(&operation) {
            tracing::warn!(%operation, "injected fault: failing the call");
            return Err(format!("injected fault: {operation} failed (FAULT_INJECTION)").into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_fails_only_what_it_names() {
        let always = FaultInjector::parse("SendMessage").unwrap();
        assert!(always.fails("SendMessage"));
        assert!(!always.fails("PutItem"));
        let never = FaultInjector::parse("SendMessage=0, PutObject=1").unwrap();
        assert!(!never.fails("SendMessage"));
        assert!(never.fails("PutObject"));
        assert!(FaultInjector::parse("SendMessage=2").is_err());
        assert!(FaultInjector::parse("SendMessage=often").is_err());
        assert_eq!(never.read_rate(), 0, "reads are not slowed unless asked");
    }

    #[test]
    fn slow_reads_take_a_rate_and_fail_nothing() {
        let slow = FaultInjector::parse("SlowReads=4096, PutObject=1").unwrap();
        assert_eq!(slow.read_rate(), 4096);
        assert!(!slow.fails("SlowReads") && !slow.fails("GetObject"));
        assert!(slow.fails("PutObject"));
        assert_eq!(FaultInjector::parse("slowreads=10").unwrap().read_rate(), 10);
        for bad in [
            "SlowReads=0",
            "SlowReads=fast",
            "SlowReads=-1",
            "SlowReads",
            "slowreads",
        ] {
            assert!(FaultInjector::parse(bad).is_err(), "{bad}");
        }
    }
}
