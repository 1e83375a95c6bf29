//! Per-key execution limits: how many jobs under one key may run at once
//! (a semaphore) and how many may start per interval (a rate), for work that
//! shares something scarce (an external API, a licence, a database).
//!
//! A deployment names its limits (`LIMITS`, the template's `Limits`
//! parameter); a job type names the limit its jobs run under
//! ([`crate::job_types::JobHandler::limit`]), or a submit names one
//! (`limit`). A limit counts per deployment, or per owner (`per=owner`): the
//! job's [key](LimitRule::key_for) is the limit's name and, for a per-owner
//! limit, the owner.
//!
//! The worker takes a slot before it claims the job and gives it back when
//! the run ends; a job that finds no room is passed on as a fresh, delayed
//! message (no attempt, no receive spent) and is registered as waiting, so
//! that a freed slot goes to the oldest waiter first ([`state`]). The
//! decisions are pure, over a [`LimitState`] the store keeps per key
//! ([`crate::ports::LimitSlots`]).

pub mod state;

pub use state::{admit, extend, forget, release, Admission, Claimant, Decision, Holder, LimitState, Waiter};

use std::collections::BTreeMap;

use crate::config::ConfigError;

/// How many starts a limit allows per interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Starts per interval, at least 1.
    pub starts: u32,
    /// The interval, milliseconds.
    pub per_ms: i64,
}

/// Whom a limit counts across.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitScope {
    /// Every job of the deployment under the limit (an external API's quota).
    #[default]
    Deployment,
    /// Each owner's jobs on their own (a per-tenant semaphore).
    Owner,
}

/// One named limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitRule {
    /// Jobs running at once at most.
    pub concurrency: Option<u32>,
    /// Starts per interval at most.
    pub rate: Option<Rate>,
    /// Whom it counts across.
    pub scope: LimitScope,
}

impl LimitRule {
    /// The key the store counts `owner`'s job under limit `name` by:
    /// `<name>|*` per deployment, `<name>|<owner>` per owner.
    pub fn key_for(&self, name: &str, owner: &str) -> String {
        match self.scope {
            LimitScope::Deployment => format!("{name}|*"),
            LimitScope::Owner => format!("{name}|{owner}"),
        }
    }
}

/// The limit name a [key](LimitRule::key_for) belongs to.
pub fn name_of(key: &str) -> &str {
    key.split('|').next().unwrap_or(key)
}

/// The limit key a job of `owner` runs under: its job type's limit
/// (`of_type`) or the one its submit `asked` for. A job type's limit that
/// this deployment does not configure is no limit (the deployment decides);
/// a submit's must be configured, and may not differ from its type's (a
/// caller cannot trade a type's limit for a looser one). The error is the
/// message for the request's `limit` field.
pub fn resolve(
    rules: &LimitRules,
    of_type: Option<String>,
    asked: Option<&str>,
    owner: &str,
) -> Result<Option<String>, String> {
    let name = match (of_type.filter(|name| rules.contains_key(name)), asked) {
        (Some(of_type), Some(asked)) if of_type != asked => {
            return Err(format!(
                "this job type runs under limit {of_type:?}; leave limit out or name that one"
            ))
        }
        (Some(name), _) => name,
        (None, Some(asked)) if rules.contains_key(asked) => asked.to_owned(),
        (None, Some(asked)) => {
            let known: Vec<&str> = rules.keys().map(String::as_str).collect();
            return Err(format!(
                "unknown limit {asked:?}; this deployment's limits: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(rules[&name].key_for(&name, owner)))
}

/// The longest interval a rate counts over: a day.
pub const MAX_RATE_INTERVAL_MS: i64 = 86_400_000;

/// The deployment's limits by name.
pub type LimitRules = BTreeMap<String, LimitRule>;

/// Parses `LIMITS`: `name:key=value,…;name:…`, with `concurrency=N`,
/// `rate=N/<interval>` (`10/1s`, `600/1m`, `1000/1h`) and `per=owner` or
/// `per=deployment` (the default). A limit needs a concurrency, a rate, or both.
pub fn parse_rules(text: &str) -> Result<LimitRules, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "LIMITS", reason };
    let mut rules = LimitRules::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, settings) = entry
            .split_once(':')
            .ok_or_else(|| invalid(format!("{entry:?}: expected name:setting=value,…")))?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(invalid(format!("{name:?}: a limit's name is letters, digits, - and _")));
        }
        let mut rule = LimitRule {
            concurrency: None,
            rate: None,
            scope: LimitScope::Deployment,
        };
        for setting in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| invalid(format!("{name}: {setting:?} is not key=value")))?;
            match (key.trim(), value.trim()) {
                ("concurrency", n) => match n.parse::<u32>() {
                    Ok(n) if n > 0 => rule.concurrency = Some(n),
                    _ => {
                        return Err(invalid(format!(
                            "{name}: concurrency {n:?} is not a whole number above 0"
                        )))
                    }
                },
                ("rate", rate) => {
                    rule.rate = Some(parse_rate(rate).ok_or_else(|| {
                        invalid(format!(
                            "{name}: rate {rate:?} is not N/<interval> (e.g. 10/1s, 600/1m)"
                        ))
                    })?)
                }
                ("per", "owner") => rule.scope = LimitScope::Owner,
                ("per", "deployment") => rule.scope = LimitScope::Deployment,
                (other, value) => return Err(invalid(format!("{name}: unknown setting {other}={value}"))),
            }
        }
        if rule.concurrency.is_none() && rule.rate.is_none() {
            return Err(invalid(format!("{name}: needs a concurrency, a rate, or both")));
        }
        if rules.insert(name.to_owned(), rule).is_some() {
            return Err(invalid(format!("{name}: named twice")));
        }
    }
    Ok(rules)
}

fn parse_rate(text: &str) -> Option<Rate> {
    let (starts, interval) = text.split_once('/')?;
    let starts: u32 = starts.trim().parse().ok().filter(|n| *n > 0)?;
    let interval = interval.trim();
    let unit_at = interval.find(|c: char| !c.is_ascii_digit())?;
    let (count, unit) = interval.split_at(unit_at);
    let count: i64 = count.parse().ok().filter(|n| *n > 0)?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    let per_ms = count.checked_mul(unit_ms).filter(|ms| *ms <= MAX_RATE_INTERVAL_MS)?;
    Some(Rate { starts, per_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_their_text_and_bad_text_names_its_fault() {
        let rules =
            parse_rules("openai: rate=10/1s ; heavy:concurrency=2,per=owner;mixed:concurrency=3,rate=600/1m").unwrap();
        assert_eq!(
            rules["openai"],
            LimitRule {
                concurrency: None,
                rate: Some(Rate {
                    starts: 10,
                    per_ms: 1_000
                }),
                scope: LimitScope::Deployment
            }
        );
        assert_eq!(rules["heavy"].concurrency, Some(2));
        assert_eq!(rules["heavy"].scope, LimitScope::Owner);
        assert_eq!(
            rules["mixed"].rate,
            Some(Rate {
                starts: 600,
                per_ms: 60_000
            })
        );
        assert!(parse_rules("").unwrap().is_empty());
        // (text, a word the error names)
        let bad = [
            ("x", "expected"),
            ("x:", "needs"),
            ("x:concurrency=0", "concurrency"),
            ("x:rate=10", "rate"),
            ("x:rate=10/1d", "rate"),
            ("x:rate=0/1s", "rate"),
            ("x:rate=1/25h", "rate"),
            ("x:per=team,concurrency=1", "unknown"),
            ("a b:concurrency=1", "name"),
            ("x:concurrency=1;x:rate=1/1s", "twice"),
        ];
        for (text, word) in bad {
            let err = parse_rules(text).unwrap_err().to_string();
            assert!(err.contains(word), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_job_runs_under_its_type_s_limit_or_the_one_its_submit_names() {
        let rules = parse_rules("api:rate=5/1s;heavy:concurrency=1,per=owner").unwrap();
        let of = |name: &str| Some(name.to_owned());
        // (the type's limit, the submit's, the key or a word of the refusal)
        type Case<'a> = (Option<String>, Option<&'a str>, Result<Option<&'a str>, &'a str>);
        let table: Vec<Case> = vec![
            (None, None, Ok(None)),
            (of("api"), None, Ok(Some("api|*"))),
            (of("api"), Some("api"), Ok(Some("api|*"))),
            (of("api"), Some("heavy"), Err("runs under")),
            (None, Some("heavy"), Ok(Some("heavy|o"))),
            (None, Some("nope"), Err("unknown limit")),
            // A type's limit the deployment does not configure is none.
            (of("unconfigured"), None, Ok(None)),
            (of("unconfigured"), Some("api"), Ok(Some("api|*"))),
        ];
        for (i, (of_type, asked, wanted)) in table.into_iter().enumerate() {
            match (resolve(&rules, of_type, asked, "o"), wanted) {
                (Ok(key), Ok(want)) => assert_eq!(key.as_deref(), want, "case {i}"),
                (Err(message), Err(word)) => assert!(message.contains(word), "case {i}: {message}"),
                (got, want) => panic!("case {i}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn a_key_counts_per_deployment_or_per_owner() {
        let mut rule = parse_rules("x:concurrency=1").unwrap()["x"];
        assert_eq!(rule.key_for("x", "jwt:a|b"), "x|*");
        rule.scope = LimitScope::Owner;
        assert_eq!(rule.key_for("x", "jwt:a|b"), "x|jwt:a|b");
        assert_eq!(name_of("x|jwt:a|b"), "x");
    }
}
