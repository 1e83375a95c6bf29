//! List cursors: the last key of a page of the owner index as an opaque,
//! URL-safe string (base64 of `created_at`, job id and owner), and back.
//! A cursor only decodes for the owner it was handed to.

use super::item::{n, s, Attributes, Item};
use longrun_core::list_cursor;
use longrun_core::ports::StoreError;

/// A page's last key, as an opaque URL-safe cursor.
pub(super) fn encode_cursor(key: &Item) -> String {
    let created = key.get_n::<i64>("created_at").ok().flatten().unwrap_or(0);
    let id = key.get_s("pk").ok().flatten().unwrap_or_default();
    let owner = key.get_s("owner").ok().flatten().unwrap_or_default();
    list_cursor::encode(created, &id, &owner)
}

/// The start key a cursor stands for; only `owner`'s own cursors decode.
pub(super) fn decode_cursor(cursor: &str, owner: &str) -> Result<Item, StoreError> {
    let (created, id) = list_cursor::decode(cursor, owner)?;
    Ok(Item::from([
        ("pk".to_owned(), s(id.as_str())),
        ("owner".to_owned(), s(owner)),
        ("created_at".to_owned(), n(created)),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_core::record::JobId;

    fn key(owner: &str) -> (JobId, Item) {
        let id = JobId::random();
        let key = Item::from([
            ("pk".to_owned(), s(id.as_str())),
            ("owner".to_owned(), s(owner)),
            ("created_at".to_owned(), n(1_700_000_000_000)),
        ]);
        (id, key)
    }

    #[test]
    fn cursors_decode_to_the_key_they_were_made_from() {
        let (_, key) = key("alice");
        assert_eq!(decode_cursor(&encode_cursor(&key), "alice").unwrap(), key);
    }

    #[test]
    fn cursors_only_decode_for_their_owner() {
        let (_, key) = key("alice");
        let cursor = encode_cursor(&key);
        assert!(matches!(decode_cursor(&cursor, "bob"), Err(StoreError::InvalidCursor)));
        assert!(matches!(
            decode_cursor("not a cursor", "alice"),
            Err(StoreError::InvalidCursor)
        ));
        let forged = list_cursor::encode(1, "not-an-id", "alice");
        assert!(matches!(
            decode_cursor(&forged, "alice"),
            Err(StoreError::InvalidCursor)
        ));
    }
}
