//! The local authorizer refuses what API Gateway's JWT authorizer refuses.

use super::*;
use serde_json::json;

const KEY: &str = include_str!("../../../../tests/fixtures/jwt/test-signing-key.pem");
const JWKS: &str = include_str!("../../../../tests/fixtures/jwt/jwks.json");
const KID: &str = "longrun-test-1";
const ISSUER: &str = "https://issuer.test";
const NOW: i64 = 1_800_000_000;

fn verifier() -> JwtVerifier {
    JwtVerifier::new(JWKS, ISSUER.into(), vec!["app".into(), "other-app".into()]).unwrap()
}

fn good_claims() -> Value {
    json!({"iss": ISSUER, "aud": "app", "sub": "alice", "iat": NOW - 10, "exp": NOW + 60, "email_verified": true})
}

fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = good_claims();
    change(claims.as_object_mut().unwrap());
    Signer::from_pem(KEY, KID).unwrap().sign(&claims)
}

#[test]
fn a_valid_token_gives_its_claims_as_text() {
    let token = Signer::from_pem(KEY, KID).unwrap().sign(&good_claims());
    let claims = verifier().verify(&token, NOW).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["email_verified"], "true");
    // Either audience, as a string or in a list, and client_id for access tokens.
    for aud in [json!("other-app"), json!(["x", "app"])] {
        assert!(verifier()
            .verify(
                &with(|c| {
                    c.insert("aud".into(), aud);
                }),
                NOW
            )
            .is_ok());
    }
    let access = with(|c| {
        c.remove("aud");
        c.insert("client_id".into(), json!("app"));
    });
    assert!(verifier().verify(&access, NOW).is_ok());
}

#[test]
fn every_failed_check_is_a_refusal() {
    let signer = Signer::from_pem(KEY, KID).unwrap();
    let good = signer.sign(&good_claims());
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_claims =
        URL_SAFE_NO_PAD.encode(json!({"iss": ISSUER, "aud": "app", "sub": "mallory", "exp": NOW + 60}).to_string());
    let other_kid = Signer::from_pem(KEY, "unknown-kid").unwrap().sign(&good_claims());
    let hs256 = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": KID}).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims().to_string()),
        URL_SAFE_NO_PAD.encode("mac")
    );
    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": KID}).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "claims swapped under a signature",
            format!("{head}.{forged_claims}.{signature}"),
            "bad signature",
        ),
        ("unknown kid", other_kid, "no key with that kid"),
        ("HS256", hs256, "unsupported alg (RSA only)"),
        ("alg none", none_alg, "unsupported alg (RSA only)"),
        ("two parts", "a.b".into(), "not three dot-separated parts"),
        (
            "wrong issuer",
            with(|c| {
                c.insert("iss".into(), json!("https://evil.test"));
            }),
            "wrong issuer",
        ),
        (
            "no issuer",
            with(|c| {
                c.remove("iss");
            }),
            "wrong issuer",
        ),
        (
            "wrong audience",
            with(|c| {
                c.insert("aud".into(), json!("someone-else"));
            }),
            "wrong audience",
        ),
        (
            "no audience",
            with(|c| {
                c.remove("aud");
            }),
            "wrong audience",
        ),
        (
            "expired",
            with(|c| {
                c.insert("exp".into(), json!(NOW));
            }),
            "expired",
        ),
        (
            "no exp",
            with(|c| {
                c.remove("exp");
            }),
            "no exp",
        ),
        (
            "not before",
            with(|c| {
                c.insert("nbf".into(), json!(NOW + 5));
            }),
            "not valid yet",
        ),
        (
            "issued later",
            with(|c| {
                c.insert("iat".into(), json!(NOW + 5));
            }),
            "not valid yet",
        ),
    ];
    for (case, token, why) in cases {
        assert_eq!(verifier().verify(&token, NOW), Err(Refusal::Invalid(why)), "{case}");
    }
}

#[test]
fn the_authorizer_modes_answer_like_the_stack_they_stand_in_for() {
    let jwt = Authorizer::Jwt(verifier());
    assert_eq!(jwt.authorize(None, NOW), Err(Refusal::Missing));
    assert_eq!(
        jwt.authorize(Some("Basic YWxpY2U6c2VjcmV0"), NOW),
        Err(Refusal::Missing)
    );
    assert!(matches!(
        jwt.authorize(Some("Bearer alice"), NOW),
        Err(Refusal::Invalid(_))
    ));
    let token = Signer::from_pem(KEY, KID)
        .unwrap()
        .token_for("alice", ISSUER, "app", NOW);
    let claims = jwt.authorize(Some(&format!("Bearer {token}")), NOW).unwrap().unwrap();
    assert_eq!(claims["sub"], "alice");

    // Unverified: the text is the caller, from the local issuer; none is no caller.
    let open = Authorizer::Unverified;
    let claims = open.authorize(Some("Bearer alice"), NOW).unwrap().unwrap();
    assert_eq!(
        (claims["iss"].as_str(), claims["sub"].as_str()),
        (longrun_lambda::apigw::LOCAL_ISSUER, "alice")
    );
    assert_eq!(open.authorize(None, NOW), Ok(None));
}

#[test]
fn a_key_set_without_rsa_signing_keys_or_audiences_is_refused() {
    let only_ec = r#"{"keys": [{"kty": "EC", "kid": "e", "crv": "P-256"}]}"#;
    assert!(JwtVerifier::new(only_ec, ISSUER.into(), vec!["app".into()]).is_err());
    assert!(JwtVerifier::new("[]", ISSUER.into(), vec!["app".into()]).is_err());
    assert!(JwtVerifier::new(JWKS, ISSUER.into(), Vec::new()).is_err());
}
