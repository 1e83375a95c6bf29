//! Canonical JSON and its hash: how a replayed submit is recognised as the
//! same request.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Sorts object keys recursively so equal JSON values serialise to equal
/// bytes, whatever order the caller wrote them in.
pub fn canonical_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = serde_json::Map::new();
            for key in keys {
                sorted.insert(key.clone(), canonical_json(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// SHA-256 (hex) of the canonical form of `value`.
pub fn hash_json(value: &Value) -> String {
    let bytes = serde_json::to_vec(&canonical_json(value)).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}
