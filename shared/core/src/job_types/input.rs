//! Helpers for checking job inputs: parsing into the typed form, field
//! errors, and object keys that must stay under `inputs/`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::FieldError;

/// Parses a job input into its typed form. Submit and the worker both parse
/// through here (in the [`JobHandler`](super::JobHandler) impl of every
/// [`TypedJob`](super::TypedJob)), so they agree on what is well-formed.
pub(crate) fn parse_input<T: DeserializeOwned>(input: &Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(input.clone())
}

/// A complaint about one field of a job's input: what `check` answers.
pub fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Rejects object keys outside `inputs/` or with path tricks: a job type
/// that reads an uploaded object checks its key with this in `check` (and
/// names it in `input_keys`, so submit holds it to the caller's own prefix).
pub fn check_input_key(field: &str, key: &str) -> Result<(), FieldError> {
    let ok = key.starts_with("inputs/")
        && key.len() > "inputs/".len()
        && key.len() <= 1024
        && !key.split('/').any(|part| part == ".." || part == ".")
        && !key.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(field_error(
            field,
            "must be an object key under inputs/ (at most 1024 characters, no . or .. segments)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keys_must_stay_under_inputs() {
        assert!(check_input_key("k", "inputs/a.csv").is_ok());
        assert!(check_input_key("k", "inputs/dir/a.csv").is_ok());
        for bad in [
            "inputs/",
            "results/x/summary.json",
            "inputs/../results/x",
            "a.csv",
            "inputs/./a",
        ] {
            assert!(check_input_key("k", bad).is_err(), "{bad} accepted");
        }
    }
}
