//! Plays the HTTP API's JWT authorizer. With a key set (`--jwks FILE`) it
//! checks a bearer token as API Gateway does before any function runs: an
//! RSA signature (RS256/384/512) by the key its `kid` names, `iss` equal to
//! the template's issuer, `aud` (or `client_id`) one of its audiences, `exp`
//! in the future and `nbf`/`iat` not; a token that fails any check gets
//! API Gateway's own `401 {"message":"Unauthorized"}`. The function then sees
//! the token's claims, every value as text.
//!
//! Without a key set, `Authorization: Bearer <name>` makes the caller
//! `<name>`, issued by [`longrun_lambda::apigw::LOCAL_ISSUER`] (no
//! signature: one machine only).

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents};
use serde::Deserialize;
use serde_json::Value;

use longrun_lambda::apigw::HttpEvent;

/// The claims a function sees, as API Gateway passes them.
pub type Claims = BTreeMap<String, String>;

/// How the local API Gateway authenticates callers.
pub enum Authorizer {
    /// A bearer token's text is the caller's name (no signature).
    Unverified,
    /// Tokens are verified against a key set, issuer and audiences.
    Jwt(JwtVerifier),
}

/// Why a request was refused before any function ran.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No bearer token at all.
    #[error("no bearer token")]
    Missing,
    /// A token that is not valid: what is wrong with it.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
}

impl Authorizer {
    /// The claims of the request's caller (`None`: no caller, the function
    /// decides), or the refusal API Gateway would answer with.
    pub fn authorize(&self, authorization: Option<&str>, now_s: i64) -> Result<Option<Claims>, Refusal> {
        let token = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match (self, token) {
            (Authorizer::Unverified, token) => Ok(HttpEvent::claims_of(token)),
            (Authorizer::Jwt(_), None) => Err(Refusal::Missing),
            (Authorizer::Jwt(verifier), Some(token)) => verifier.verify(token, now_s).map(Some),
        }
    }
}

/// One RSA signing key of the set.
struct Key {
    kid: String,
    alg: Option<String>,
    public: RsaPublicKeyComponents<Vec<u8>>,
}

/// Verifies tokens as the template's JWT authorizer does.
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

impl JwtVerifier {
    /// A verifier over the JWKS document `jwks` (its RSA signing keys).
    pub fn new(jwks: &str, issuer: String, audiences: Vec<String>) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in set.keys {
            if jwk.kty != "RSA" || jwk.usage.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
                return Err("an RSA key without kid, n or e".into());
            };
            let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("key {kid}: {e}"));
            let public = RsaPublicKeyComponents {
                n: decode(&n)?,
                e: decode(&e)?,
            };
            keys.push(Key {
                kid,
                alg: jwk.alg,
                public,
            });
        }
        if keys.is_empty() {
            return Err("the JWKS document has no RSA signing key".into());
        }
        if audiences.is_empty() {
            return Err("the authorizer names no audience".into());
        }
        Ok(JwtVerifier {
            issuer,
            audiences,
            keys,
        })
    }

    /// Reads the key set from `path`.
    pub fn from_file(path: &Path, issuer: String, audiences: Vec<String>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::new(&text, issuer, audiences).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The token's claims when it passes every check at `now_s` (epoch seconds).
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, Refusal> {
        let invalid = Refusal::Invalid;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not three dot-separated parts"));
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| invalid("not base64url"));
        let header: Header = serde_json::from_slice(&decode(header)?).map_err(|_| invalid("bad header"))?;
        let params: &RsaParameters = match header.alg.as_str() {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
            "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
            _ => return Err(invalid("unsupported alg (RSA only)")),
        };
        let key = self
            .keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .ok_or(invalid("no key with that kid"))?;
        if key.alg.as_ref().is_some_and(|alg| *alg != header.alg) {
            return Err(invalid("alg differs from the key's"));
        }
        let signing_input = &token[..token.len() - sig.len() - 1];
        key.public
            .verify(params, signing_input.as_bytes(), &decode(sig)?)
            .map_err(|_| invalid("bad signature"))?;
        let claims: serde_json::Map<String, Value> =
            serde_json::from_slice(&decode(payload)?).map_err(|_| invalid("claims are not a JSON object"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(invalid("wrong issuer"));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.audiences.contains(aud),
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str().is_some_and(|a| self.audiences.iter().any(|x| x == a))),
            _ => false,
        } || claims
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.audiences.iter().any(|a| a == id));
        if !audience_ok {
            return Err(invalid("wrong audience"));
        }
        let time = |name: &str| claims.get(name).and_then(Value::as_i64);
        match time("exp") {
            Some(exp) if exp > now_s => {}
            Some(_) => return Err(invalid("expired")),
            None => return Err(invalid("no exp")),
        }
        if time("nbf").is_some_and(|nbf| nbf > now_s) || time("iat").is_some_and(|iat| iat > now_s) {
            return Err(invalid("not valid yet"));
        }
        Ok(claims
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(text) => (name, text),
                other => (name, other.to_string()),
            })
            .collect())
    }
}

/// Signs tokens with an RSA private key (PKCS#8 PEM), kid and RS256: a
/// stand-in identity provider for tests and for `make smoke` against the
/// local runtime (`longrun-local token`).
pub struct Signer {
    kid: String,
    key: ring::rsa::KeyPair,
}

impl Signer {
    /// The signer of the PKCS#8 PEM `pem`, naming key `kid` in its tokens.
    pub fn from_pem(pem: &str, kid: &str) -> Result<Self, String> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| format!("not a PEM key: {e}"))?;
        let key = ring::rsa::KeyPair::from_pkcs8(&der).map_err(|e| format!("not a PKCS#8 RSA key: {e}"))?;
        Ok(Signer {
            kid: kid.to_owned(),
            key,
        })
    }

    /// A signed token carrying `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a valid key");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A token for `sub` from `issuer` to `audience`, valid for an hour from `now_s`.
    pub fn token_for(&self, sub: &str, issuer: &str, audience: &str, now_s: i64) -> String {
        self.sign(&serde_json::json!({
            "iss": issuer, "aud": audience, "sub": sub,
            "iat": now_s, "nbf": now_s, "exp": now_s + 3600,
        }))
    }
}

#[cfg(test)]
mod tests;
