//! The settings a job type reads for itself: its own environment variables,
//! parsed and checked by the job type's own module (`longrun-jobs` reads
//! `MAX_CSV_RECORD_BYTES` in `report`, an app its own variables in its own
//! crate), with the same errors as the platform's [`Config`](super::Config).

use std::fmt;
use std::sync::Arc;

use super::ConfigError;

/// How a value is looked up by name.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A function's environment, as its configuration was read from it: the
/// environment itself in Lambda, a map in tests and in the local runtime.
/// `Debug` shows no values (the environment holds credentials).
#[derive(Clone)]
pub struct Settings {
    lookup: Arc<Lookup>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Settings(..)")
    }
}

impl Settings {
    /// The settings `lookup` answers.
    pub fn new(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Settings {
            lookup: Arc::new(lookup),
        }
    }

    /// The raw value of `name`, unless unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// `name` parsed as a `T`, or `default` when unset; a value that does
    /// not parse is [`ConfigError::Invalid`] naming it.
    pub fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        super::number(&|n: &str| (self.lookup)(n), name, default)
    }

    /// [`number`](Self::number), refusing 0: for a bound that must allow something.
    pub fn positive<T: std::str::FromStr + PartialEq + Default>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let value = self.number(name, default)?;
        if value == T::default() {
            return Err(ConfigError::Invalid {
                name,
                reason: "must be at least 1".into(),
            });
        }
        Ok(value)
    }

    /// `name` as a switch: `true`/`1` on, unset, blank, `false` or `0` off.
    pub fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        super::flag(&|n: &str| (self.lookup)(n), name)
    }
}
