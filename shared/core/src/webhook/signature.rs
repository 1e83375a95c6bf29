//! Standard Webhooks signing (<https://www.standardwebhooks.com/>).
//!
//! Each delivery carries three headers: `webhook-id` (the message id, the same on every retry),
//! `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`. The signature is an
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, written as `v1,<base64>`; while a secret is
//! being rotated the header carries one such signature per secret, separated by spaces, and a receiver
//! accepts the message if any of them verifies.
//!
//! Secrets are 24 to 64 random bytes, shown to users as `whsec_` followed by their base64. A
//! [`WebhookSecret`] never prints its key: [`WebhookSecret::to_whsec_string`] is the only way to see it.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore as _;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the attempt's Unix timestamp in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Prefix of a serialised secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest key accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 24;
/// Longest key accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64;
/// Length of a key made by [`WebhookSecret::generate`], in bytes.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// Reads base64 with or without `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A symmetric signing key. Its `Debug` and `Display` print `WebhookSecret(…)`, never the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
    /// HMAC state keyed with `key`, cloned for every message.
    keyed: HmacSha256,
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for WebhookSecret {}

/// Why a serialised secret was refused. The messages never include the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error("webhook secret must start with \"whsec_\"")]
    MissingPrefix,
    /// The part after the prefix is not base64.
    #[error("webhook secret is not valid base64")]
    NotBase64,
    /// The key is shorter than 24 or longer than 64 bytes.
    #[error("webhook secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, got {0}")]
    BadLength(usize),
}

impl WebhookSecret {
    /// A fresh key of [`GENERATED_SECRET_BYTES`] bytes from the thread-local CSPRNG.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self::keyed(key)
    }

    /// Reads `whsec_<base64>` (padding optional).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = LENIENT.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        Self::from_bytes(key)
    }

    /// Wraps raw key bytes, which must be 24 to 64 long.
    pub fn from_bytes(key: Vec<u8>) -> Result<Self, SecretError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self::keyed(key))
    }

    fn keyed(key: Vec<u8>) -> Self {
        let keyed = <HmacSha256 as KeyInit>::new(&key_block(&key));
        Self { key, keyed }
    }

    /// The serialised form, `whsec_<base64>`: the only way to see the key.
    pub fn to_whsec_string(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// The key as one SHA-256 block. HMAC zero-pads keys no longer than a block, and [`MAX_SECRET_BYTES`] is
/// exactly one block, so keying with the padded block equals keying with the bytes.
fn key_block(key: &[u8]) -> hmac::digest::Key<HmacSha256> {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    let n = key.len().min(block.len());
    block[..n].copy_from_slice(&key[..n]);
    block
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// The signature of one message under one secret: `v1,<base64 of HMAC-SHA256>`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
    let tag = secret
        .mac(msg_id, &timestamp_s.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header value: one signature per secret, space-separated, in the given order.
pub fn signature_header(secrets: &[&WebhookSecret], msg_id: &str, timestamp_s: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, msg_id, timestamp_s, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a message failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not an integer.
    #[error("webhook-timestamp is not a Unix timestamp")]
    BadTimestamp,
    /// `webhook-timestamp` is further from now than the tolerance.
    #[error("webhook-timestamp is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    /// `webhook-signature` holds no `v1` signature.
    #[error("webhook-signature has no v1 signature")]
    NoSignature,
    /// No `v1` signature matches.
    #[error("no webhook signature matches")]
    Mismatch,
}

/// Verifies a received message against one secret.
///
/// `headers` is `(webhook-id, webhook-timestamp, webhook-signature)` as received. The timestamp must be
/// within `tolerance_s` seconds of `now_s` either way. The message is accepted if any `v1,` entry of the
/// signature header matches; entries of other versions are skipped. Tags are compared in constant time.
pub fn verify(
    secret: &WebhookSecret,
    headers: (&str, &str, &str),
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let (msg_id, timestamp, signatures) = headers;
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if now_s.abs_diff(ts) > tolerance_s.max(0).unsigned_abs() {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    // Sign the timestamp as received, so that a re-serialised integer ("+1", "01") cannot match.
    let mac = secret.mac(msg_id, timestamp, body);
    let mut seen_v1 = false;
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        seen_v1 = true;
        let Ok(tag) = STANDARD.decode(encoded) else {
            continue;
        };
        if mac.clone().verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(if seen_v1 {
        VerifyError::Mismatch
    } else {
        VerifyError::NoSignature
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer vector used by the Standard Webhooks reference libraries' tests.
    const KAT_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const KAT_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const KAT_TS: i64 = 1614265330;
    const KAT_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const KAT_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn kat_secret() -> WebhookSecret {
        WebhookSecret::parse(KAT_SECRET).expect("vector secret")
    }

    #[test]
    fn known_answer() {
        let secret = kat_secret();
        assert_eq!(sign(&secret, KAT_ID, KAT_TS, KAT_BODY), KAT_SIG);
        let ts = KAT_TS.to_string();
        assert_eq!(
            verify(&secret, (KAT_ID, &ts, KAT_SIG), KAT_BODY, KAT_TS + 10, 300),
            Ok(())
        );
    }

    #[test]
    fn block_keying_matches_plain_hmac() {
        for len in [24u8, 32, 63, 64] {
            let key: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let secret = WebhookSecret::from_bytes(key.clone()).expect("valid length");
            let mut plain = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
            plain.update(b"msg.1.body");
            let want = format!("v1,{}", STANDARD.encode(plain.finalize().into_bytes()));
            assert_eq!(sign(&secret, "msg", 1, b"body"), want, "key of {len} bytes");
        }
    }

    #[test]
    fn secret_round_trip_and_limits() {
        let s = WebhookSecret::generate();
        let text = s.to_whsec_string();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text), Ok(s.clone()));
        assert_ne!(WebhookSecret::generate(), s);
        assert_eq!(kat_secret().to_whsec_string(), KAT_SECRET);
        // Padding is optional.
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 25]));
        assert!(padded.ends_with('='));
        assert!(WebhookSecret::parse(&padded).is_ok());
        assert!(WebhookSecret::parse(padded.trim_end_matches('=')).is_ok());
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(WebhookSecret::parse("whsec_not*base64"), Err(SecretError::NotBase64));
        let short = format!("whsec_{}", STANDARD.encode([1u8; 23]));
        assert_eq!(WebhookSecret::parse(&short), Err(SecretError::BadLength(23)));
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert_eq!(WebhookSecret::parse(&long), Err(SecretError::BadLength(65)));
        assert!(WebhookSecret::from_bytes(vec![0; 64]).is_ok());
    }

    #[test]
    fn debug_and_display_do_not_leak() {
        let s = kat_secret();
        let encoded = KAT_SECRET.trim_start_matches("whsec_");
        for shown in [
            format!("{s:?}"),
            format!("{s}"),
            format!("{:?}", Some(&s)),
            format!("{s:#?}"),
        ] {
            assert!(!shown.contains(encoded), "{shown}");
            assert!(!shown.contains("whsec"), "{shown}");
            assert!(shown.contains("WebhookSecret(…)"), "{shown}");
        }
        let err = WebhookSecret::parse(&format!("whsec_{}", &encoded[..8])).expect_err("too short");
        assert!(!err.to_string().contains(&encoded[..8]));
    }

    #[test]
    fn rotation_either_secret_verifies() {
        let old = kat_secret();
        let new = WebhookSecret::generate();
        let body = br#"{"job":"j1","state":"succeeded"}"#;
        let header = signature_header(&[&new, &old], "msg_1", 1_700_000_000, body);
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&new, "msg_1", 1_700_000_000, body));
        for secret in [&old, &new] {
            assert_eq!(
                verify(secret, ("msg_1", "1700000000", &header), body, 1_700_000_000, 300),
                Ok(())
            );
        }
        let stranger = WebhookSecret::generate();
        assert_eq!(
            verify(&stranger, ("msg_1", "1700000000", &header), body, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn tampering_fails() {
        let s = kat_secret();
        let ts = KAT_TS.to_string();
        let now = KAT_TS;
        let check = |id: &str, ts: &str, sig: &str, body: &[u8]| verify(&s, (id, ts, sig), body, now, 300);
        assert_eq!(
            check(KAT_ID, &ts, KAT_SIG, br#"{"test": 2432232315}"#),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check("msg_other", &ts, KAT_SIG, KAT_BODY), Err(VerifyError::Mismatch));
        let ts2 = (KAT_TS + 1).to_string();
        assert_eq!(check(KAT_ID, &ts2, KAT_SIG, KAT_BODY), Err(VerifyError::Mismatch));
        assert_eq!(
            check(KAT_ID, &format!("+{ts}"), KAT_SIG, KAT_BODY),
            Err(VerifyError::Mismatch)
        );
        // Same bytes as a "v1a" (asymmetric) entry or with a broken tag do not count.
        let v1a = KAT_SIG.replacen("v1,", "v1a,", 1);
        assert_eq!(check(KAT_ID, &ts, &v1a, KAT_BODY), Err(VerifyError::NoSignature));
        assert_eq!(check(KAT_ID, &ts, "", KAT_BODY), Err(VerifyError::NoSignature));
        assert_eq!(check(KAT_ID, &ts, "v1,", KAT_BODY), Err(VerifyError::Mismatch));
        assert_eq!(
            check(KAT_ID, &ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", KAT_BODY),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(KAT_ID, &ts, &KAT_SIG[..KAT_SIG.len() - 4], KAT_BODY),
            Err(VerifyError::Mismatch)
        );
        // A valid entry among junk and other versions still verifies.
        let mixed = format!("v1a,AAAA v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=  {KAT_SIG} v2,x");
        assert_eq!(check(KAT_ID, &ts, &mixed, KAT_BODY), Ok(()));
        assert_eq!(check(KAT_ID, "soon", KAT_SIG, KAT_BODY), Err(VerifyError::BadTimestamp));
    }

    #[test]
    fn timestamp_tolerance() {
        let s = kat_secret();
        let ts = KAT_TS.to_string();
        let at = |now: i64| verify(&s, (KAT_ID, &ts, KAT_SIG), KAT_BODY, now, 300);
        assert_eq!(at(KAT_TS + 300), Ok(()));
        assert_eq!(at(KAT_TS - 300), Ok(()));
        assert_eq!(at(KAT_TS + 301), Err(VerifyError::TimestampOutOfTolerance));
        assert_eq!(at(KAT_TS - 301), Err(VerifyError::TimestampOutOfTolerance));
        assert_eq!(at(i64::MIN), Err(VerifyError::TimestampOutOfTolerance));
        assert_eq!(at(i64::MAX), Err(VerifyError::TimestampOutOfTolerance));
        assert_eq!(verify(&s, (KAT_ID, &ts, KAT_SIG), KAT_BODY, KAT_TS, -5), Ok(()));
    }
}
