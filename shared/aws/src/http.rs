//! The one HTTPS client every SDK client of a process shares, and the SDK
//! configuration the functions build from Lambda's environment.
//!
//! - **TLS.** hyper 1 + rustls on ring, chosen here rather than by the SDK's
//!   default features (rustls on aws-lc-rs, plus a legacy hyper 0.14 stack):
//!   one TLS stack in the binary, the same one the webhook deliveries use.
//! - **Roots.** The functions' SDK clients trust only Amazon Trust Services'
//!   roots ([`SdkTrustRoots::Amazon`]), which issue the certificates of the
//!   DynamoDB, SQS, S3 and STS endpoints of AWS's commercial regions: six
//!   certificates compiled in, parsed in microseconds, instead of reading
//!   and parsing every file of the system store at each cold start (most of
//!   a function's Init before). It is also the narrower trust.
//!   `SDK_TRUST_ROOTS=system` trusts the system store instead, for an HTTPS
//!   endpoint with a certificate of its own (an emulator behind TLS, a
//!   TLS-inspecting proxy, a partition not verified here such as China's).
//!   The tools ([`load_sdk_config`]) default to the system store: they run
//!   on people's machines, behind whatever proxy.
//! - **Lambda.** [`lambda_sdk_config`] takes region, credentials and endpoint
//!   from the environment Lambda sets, and probes nothing else: no profile
//!   files, no instance metadata, no STS. The tools and tests, which run
//!   with profiles, use [`load_sdk_config`], the SDK's full chains.

use aws_config::BehaviorVersion;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use aws_types::SdkConfig;

/// The roots of Amazon Trust Services (PEM): Amazon Root CA 1–4,
/// Starfield Services Root CA G2 and the Starfield Class 2 root that
/// cross-signs it.
pub const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("amazon-trust-services.pem");

/// Which root certificates the SDK clients trust (`SDK_TRUST_ROOTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdkTrustRoots {
    /// Amazon Trust Services only (`amazon`, the default).
    Amazon,
    /// The operating system's store (`system`).
    System,
}

impl SdkTrustRoots {
    /// `SDK_TRUST_ROOTS` from the environment; unset is `default`.
    pub fn from_env(default: SdkTrustRoots) -> Result<Self, String> {
        Self::parse(std::env::var("SDK_TRUST_ROOTS").ok().as_deref(), default)
    }

    /// `amazon` or `system`; `None` or empty is `default`.
    pub fn parse(value: Option<&str>, default: SdkTrustRoots) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(default),
            Some("amazon") => Ok(SdkTrustRoots::Amazon),
            Some("system") => Ok(SdkTrustRoots::System),
            Some(other) => Err(format!("SDK_TRUST_ROOTS={other:?}: expected `amazon` or `system`")),
        }
    }

    fn trust_store(self) -> TrustStore {
        match self {
            SdkTrustRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM),
            SdkTrustRoots::System => TrustStore::default(),
        }
    }
}

/// The HTTPS client for the SDK clients of one process: build it once and
/// share it (each SDK client keeps its own connection pool per timeout
/// setting through it).
pub fn https_client(roots: SdkTrustRoots) -> SharedHttpClient {
    let context = TlsContext::builder()
        .with_trust_store(roots.trust_store())
        .build()
        .expect("a TLS context from a trust store");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// The SDK's standard configuration chains (environment, profile, SSO,
/// container and instance metadata), over [`https_client`] trusting the
/// system's roots unless `SDK_TRUST_ROOTS` says otherwise: for the local
/// runtime, the tools and the tests. An invalid `SDK_TRUST_ROOTS` panics.
pub async fn load_sdk_config() -> SdkConfig {
    let roots = SdkTrustRoots::from_env(SdkTrustRoots::System).unwrap_or_else(|e| panic!("{e}"));
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(roots))
        .load()
        .await
}

/// Why a function's SDK configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LambdaSdkConfigError {
    /// `AWS_REGION` is not set (Lambda always sets it).
    #[error("AWS_REGION is not set")]
    NoRegion,
    /// `SDK_TRUST_ROOTS` is neither `amazon` nor `system`.
    #[error("{0}")]
    TrustRoots(String),
}

/// The SDK configuration of a function on Lambda, from its environment
/// alone: `AWS_REGION`, the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read
/// at each credentials refresh), `AWS_ENDPOINT_URL` when set (an emulator),
/// and `SDK_TRUST_ROOTS`.
pub fn lambda_sdk_config() -> Result<SdkConfig, LambdaSdkConfigError> {
    lambda_sdk_config_from(|name| std::env::var(name).ok())
}

/// A service's own setting from the environment, as the SDK names it
/// (`AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB's `AWS_ENDPOINT_URL`), never
/// from a profile.
#[derive(Debug)]
struct ServiceEnvironment;

impl ServiceEnvironment {
    fn variable(key: &ServiceConfigKey<'_>) -> String {
        format!(
            "{}_{}",
            key.env(),
            key.service_id().to_ascii_uppercase().replace(' ', "_")
        )
    }
}

impl LoadServiceConfig for ServiceEnvironment {
    /// The service's own variable, else the shared one (as the SDK's own loader).
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        [Self::variable(&key), key.env().to_owned()]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }
}

/// [`lambda_sdk_config`] over any variable lookup (tests); a service's own
/// endpoint (`AWS_ENDPOINT_URL_<SERVICE>`) is read from the process environment.
pub fn lambda_sdk_config_from(lookup: impl Fn(&str) -> Option<String>) -> Result<SdkConfig, LambdaSdkConfigError> {
    let region = lookup("AWS_REGION")
        .or_else(|| lookup("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .ok_or(LambdaSdkConfigError::NoRegion)?;
    let roots = SdkTrustRoots::parse(lookup("SDK_TRUST_ROOTS").as_deref(), SdkTrustRoots::Amazon)
        .map_err(LambdaSdkConfigError::TrustRoots)?;
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(https_client(roots))
        .sleep_impl(aws_smithy_async::rt::sleep::default_async_sleep().expect("the tokio sleep"))
        .time_source(aws_smithy_async::time::SharedTimeSource::default())
        .service_config(ServiceEnvironment);
    if let Some(endpoint) = lookup("AWS_ENDPOINT_URL").filter(|e| !e.is_empty()) {
        builder = builder.endpoint_url(endpoint);
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_amazon_roots_are_the_six_certificates_of_amazon_trust_services() {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 6);
        for cert in &certs {
            webpki::anchor_from_trusted_cert(cert).expect("a usable trust anchor");
        }
    }

    #[test]
    fn a_service_endpoint_is_read_from_the_variable_the_sdk_names() {
        let key = ServiceConfigKey::builder()
            .service_id("DynamoDB")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        assert_eq!(ServiceEnvironment::variable(&key), "AWS_ENDPOINT_URL_DYNAMODB");
    }

    #[test]
    fn trust_roots_parse_amazon_system_or_refuse() {
        use SdkTrustRoots::{Amazon, System};
        assert_eq!(SdkTrustRoots::parse(None, Amazon), Ok(Amazon));
        assert_eq!(SdkTrustRoots::parse(None, System), Ok(System));
        assert_eq!(SdkTrustRoots::parse(Some(""), Amazon), Ok(Amazon));
        assert_eq!(SdkTrustRoots::parse(Some("amazon"), System), Ok(Amazon));
        assert_eq!(SdkTrustRoots::parse(Some("system"), Amazon), Ok(System));
        assert!(SdkTrustRoots::parse(Some("all"), Amazon)
            .unwrap_err()
            .contains("SDK_TRUST_ROOTS"));
    }

    #[tokio::test]
    async fn a_function_config_comes_from_the_environment_alone() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let config = lambda_sdk_config_from(env(&[
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]))
        .unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-central-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(config.http_client().is_some());
        assert!(config.credentials_provider().is_some());

        let no_endpoint = lambda_sdk_config_from(env(&[("AWS_DEFAULT_REGION", "us-west-2")])).unwrap();
        assert_eq!(no_endpoint.region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(no_endpoint.endpoint_url(), None);

        assert!(matches!(
            lambda_sdk_config_from(env(&[])),
            Err(LambdaSdkConfigError::NoRegion)
        ));
        assert!(matches!(
            lambda_sdk_config_from(env(&[("AWS_REGION", "us-east-1"), ("SDK_TRUST_ROOTS", "none")])),
            Err(LambdaSdkConfigError::TrustRoots(_))
        ));
    }
}
