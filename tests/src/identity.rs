//! Callers of the stack under test: the bearer token each sends and the
//! owner name the stack makes of it.
//!
//! With `LONGRUN_JWT_KEY` (a PKCS#8 RSA key, PEM), `LONGRUN_JWT_KID`,
//! `LONGRUN_JWT_ISSUER` and `LONGRUN_JWT_AUDIENCE` set, every caller sends a
//! real JWT signed with that key (a local runtime started with `--jwks`, or
//! a deployed stack whose issuer trusts that key); otherwise the caller's
//! name itself, which an unverifying local runtime takes as the caller.

use std::sync::OnceLock;

use longrun_lambda::apigw::LOCAL_ISSUER;
use longrun_local::jwt::Signer;

struct Issuer {
    signer: Signer,
    issuer: String,
    audience: String,
}

fn issuer() -> Option<&'static Issuer> {
    static ISSUER: OnceLock<Option<Issuer>> = OnceLock::new();
    ISSUER
        .get_or_init(|| {
            let key = std::env::var("LONGRUN_JWT_KEY").ok().filter(|k| !k.is_empty())?;
            let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("LONGRUN_JWT_KEY needs {name}"));
            let pem = std::fs::read_to_string(&key).unwrap_or_else(|e| panic!("{key}: {e}"));
            Some(Issuer {
                signer: Signer::from_pem(&pem, &var("LONGRUN_JWT_KID")).expect("a PKCS#8 RSA key"),
                issuer: var("LONGRUN_JWT_ISSUER"),
                audience: var("LONGRUN_JWT_AUDIENCE"),
            })
        })
        .as_ref()
}

/// Whether callers send real, signed JWTs.
pub fn signed_tokens() -> bool {
    issuer().is_some()
}

/// The bearer token the caller `name` sends.
pub fn token_for(name: &str) -> String {
    match issuer() {
        Some(i) => i
            .signer
            .token_for(name, &i.issuer, &i.audience, chrono::Utc::now().timestamp()),
        None => name.to_owned(),
    }
}

/// The owner the stack makes of the caller `name` (`jwt:<iss>|<name>`).
pub fn owner_of(name: &str) -> String {
    let iss = issuer().map_or(LOCAL_ISSUER, |i| i.issuer.as_str());
    longrun_lambda::identity::jwt_owner(iss, name)
}
