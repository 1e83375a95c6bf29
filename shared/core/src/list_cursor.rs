//! The opaque cursor both job stores hand out for `list_by_owner` (and
//! `list_schedules`): the last job (schedule) of a page (`created_at`, id) and the owner it was handed to, as
//! URL-safe base64. It only decodes for that owner, so one caller's cursor
//! never pages through another caller's jobs.

use base64::Engine;

use crate::ports::StoreError;
use crate::record::JobId;

const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The cursor after the job `id` created at `created_at`, for `owner`.
pub fn encode(created_at: i64, id: &str, owner: &str) -> String {
    ENGINE.encode(format!("{created_at}\n{id}\n{owner}"))
}

/// The (`created_at`, id) a cursor stands for; `InvalidCursor` for anything
/// this API did not hand out, or handed to another owner.
pub fn decode(cursor: &str, owner: &str) -> Result<(i64, JobId), StoreError> {
    let (created_at, id) = decode_place(cursor, owner)?;
    Ok((created_at, JobId::parse(&id).ok_or(StoreError::InvalidCursor)?))
}

/// The (`created_at`, schedule id) a cursor of `list_schedules` stands for.
pub fn decode_schedule(cursor: &str, owner: &str) -> Result<(i64, String), StoreError> {
    let (created_at, id) = decode_place(cursor, owner)?;
    if !crate::schedule::is_schedule_id(&id) {
        return Err(StoreError::InvalidCursor);
    }
    Ok((created_at, id))
}

fn decode_place(cursor: &str, owner: &str) -> Result<(i64, String), StoreError> {
    let text = ENGINE
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(StoreError::InvalidCursor)?;
    let mut parts = text.splitn(3, '\n');
    let (Some(created_at), Some(id), Some(cursor_owner)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(StoreError::InvalidCursor);
    };
    if cursor_owner != owner {
        return Err(StoreError::InvalidCursor);
    }
    let created_at = created_at.parse().map_err(|_| StoreError::InvalidCursor)?;
    Ok((created_at, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_its_place_for_its_owner_only() {
        let id = JobId::random();
        let cursor = encode(1_700_000_000_000, id.as_str(), "jwt:i|alice");
        assert_eq!(decode(&cursor, "jwt:i|alice").unwrap(), (1_700_000_000_000, id.clone()));
        // (cursor, owner asking)
        let refused = [
            (cursor.clone(), "jwt:i|bob"),
            ("not a cursor".to_owned(), "jwt:i|alice"),
            (encode(1, "not-an-id", "jwt:i|alice"), "jwt:i|alice"),
            (ENGINE.encode("x\nid\njwt:i|alice"), "jwt:i|alice"),
        ];
        for (cursor, owner) in refused {
            assert!(
                matches!(decode(&cursor, owner), Err(StoreError::InvalidCursor)),
                "{cursor}"
            );
        }
    }
}
