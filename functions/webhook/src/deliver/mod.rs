//! One webhook POST to an address that [`longrun_core::webhook::target::resolve_checked`] has already approved.
//!
//! [`post`] connects to exactly the socket address it is given and never resolves a name, so the address
//! check cannot be bypassed by a second DNS answer. For `https` it speaks TLS with the URL's host as SNI
//! and as the name the certificate must match. It sends a single HTTP/1.1 request, never follows
//! redirects (a 3xx is just a status), reads at most [`DeliveryLimits::max_response_bytes`] of the
//! response body and bounds the whole exchange by [`DeliveryLimits::total_timeout`].
//!
//! Errors are short, contain no secrets and no response content, and are meant for a job's `last_error`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use longrun_core::webhook::target::{CallbackUrl, Scheme};

/// The `User-Agent` every delivery sends.
pub const USER_AGENT: &str = "longrun-webhooks/1";

/// Request headers that [`post`] sets itself; caller-supplied headers with these names are ignored.
pub const RESERVED_HEADERS: [HeaderName; 8] = [
    header::HOST,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::USER_AGENT,
    header::TE,
    header::UPGRADE,
];

/// Bounds on one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryLimits {
    /// Bound on the TCP connect plus the TLS handshake. Default 2 s.
    pub connect_timeout: Duration,
    /// Bound on the whole exchange, connect included. Default 5 s (a receiver should answer at once and
    /// do its work after). If it runs out while the response
    /// body is being read, the status already received is returned.
    pub total_timeout: Duration,
    /// Response body bytes read at most; the rest is dropped unread. Default 64 KiB.
    pub max_response_bytes: usize,
}

impl Default for DeliveryLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(5),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResponse {
    /// The response status, redirects included (they are never followed).
    pub status: StatusCode,
    /// Response body bytes read, at most [`DeliveryLimits::max_response_bytes`].
    pub body_len: usize,
    /// Whether the body was read to its end; false when it was capped, cut off by the total timeout,
    /// or broken off by the receiver.
    pub body_complete: bool,
}

/// Why a delivery got no response status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The TCP connection could not be made.
    #[error("connect to {addr} failed: {reason}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// TLS could not be set up: bad or untrusted certificate, name mismatch, handshake failure.
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// The name the certificate was checked against.
        host: String,
        /// The TLS library's reason.
        reason: String,
    },
    /// A time limit ran out before a response status arrived.
    #[error("{stage} timed out after {after:?}")]
    Timeout {
        /// `"connect"` (TCP and TLS) or `"request"` (the whole exchange).
        stage: &'static str,
        /// The limit that ran out.
        after: Duration,
    },
    /// The HTTP exchange failed: the connection closed early or the response was not valid HTTP/1.1.
    #[error("HTTP exchange failed: {0}")]
    Protocol(String),
}

/// A client TLS configuration trusting `roots`, on the ring provider (as the SDK clients), offering only HTTP/1.1 by ALPN.
///
/// The provider is chosen explicitly rather than taken from the process default, so the result does not
/// depend on which rustls providers other crates in the build enable.
pub fn tls_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The default client TLS configuration: the operating system's root certificates, loaded once per process.
pub fn native_tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err("no root certificates found on this system".to_owned());
            }
            tls_config_with_roots(roots).map_err(|e| e.to_string())
        })
        .clone()
}

/// POSTs `body` to `url` over a connection to exactly `addr`, trusting the system's root certificates.
///
/// See [`post_with_tls`].
pub async fn post(
    url: &CallbackUrl,
    addr: SocketAddr,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
    limits: &DeliveryLimits,
) -> Result<DeliveryResponse, DeliveryError> {
    post_with_tls(url, addr, headers, body, limits, None).await
}

/// POSTs `body` to `url` over a connection to exactly `addr`.
///
/// Sends `Host` (from the URL), `Content-Type: application/json`, `User-Agent:` [`USER_AGENT`],
/// `Connection: close`, `Content-Length`, then `headers` in order, skipping any named in
/// [`RESERVED_HEADERS`]. `tls` is the client configuration for `https` URLs; `None` means
/// [`native_tls_config`]. Returns the status of the first response, whatever it is.
pub async fn post_with_tls(
    url: &CallbackUrl,
    addr: SocketAddr,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
    limits: &DeliveryLimits,
    tls: Option<Arc<ClientConfig>>,
) -> Result<DeliveryResponse, DeliveryError> {
    let request = build_request(url, headers, body)?;
    let deadline = Instant::now() + limits.total_timeout;
    let (response, connection) = match timeout_at(deadline, send(url, addr, request, limits, tls)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(DeliveryError::Timeout {
                stage: "request",
                after: limits.total_timeout,
            })
        }
    };
    let status = response.status();
    let (body_len, body_complete) = drain_capped(response.into_body(), limits.max_response_bytes, deadline).await;
    // Dropping the guard closes the connection and discards whatever the receiver still sends.
    drop(connection);
    Ok(DeliveryResponse {
        status,
        body_len,
        body_complete,
    })
}

fn build_request(
    url: &CallbackUrl,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> Result<Request<Full<Bytes>>, DeliveryError> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(url.path_and_query())
        .header(header::HOST, url.host_header())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::CONNECTION, "close");
    for (name, value) in headers {
        if !RESERVED_HEADERS.contains(name) {
            builder = builder.header(name, value);
        }
    }
    builder
        .body(Full::new(body))
        .map_err(|e| DeliveryError::Protocol(format!("invalid request: {e}")))
}

/// Aborts the task driving the connection when dropped, so no connection outlives the delivery.
struct ConnectionGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects, sets up TLS if needed and sends the request; returns once the response head is in.
async fn send(
    url: &CallbackUrl,
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    limits: &DeliveryLimits,
    tls: Option<Arc<ClientConfig>>,
) -> Result<(hyper::Response<Incoming>, ConnectionGuard), DeliveryError> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| DeliveryError::Connect {
            addr,
            reason: e.to_string(),
        })?;
        // Small requests: send them without Nagle delay. Failure here only costs latency.
        let _ = tcp.set_nodelay(true);
        Ok::<_, DeliveryError>(tcp)
    };
    match url.scheme() {
        Scheme::Http => {
            let tcp = timeout(limits.connect_timeout, connect)
                .await
                .map_err(|_| DeliveryError::Timeout {
                    stage: "connect",
                    after: limits.connect_timeout,
                })??;
            exchange(tcp, request).await
        }
        Scheme::Https => {
            let tls_error = |reason: String| DeliveryError::Tls {
                host: url.host().to_owned(),
                reason,
            };
            let config = match tls {
                Some(config) => config,
                None => native_tls_config().map_err(tls_error)?,
            };
            let server_name =
                ServerName::try_from(url.host().to_owned()).map_err(|e| tls_error(format!("bad server name: {e}")))?;
            let handshake = async {
                let tcp = connect.await?;
                tokio_rustls::TlsConnector::from(config)
                    .connect(server_name, tcp)
                    .await
                    .map_err(|e| tls_error(e.to_string()))
            };
            let stream = timeout(limits.connect_timeout, handshake)
                .await
                .map_err(|_| DeliveryError::Timeout {
                    stage: "connect",
                    after: limits.connect_timeout,
                })??;
            exchange(stream, request).await
        }
    }
}

async fn exchange<S>(
    stream: S,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::Response<Incoming>, ConnectionGuard), DeliveryError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let protocol = |e: hyper::Error| DeliveryError::Protocol(e.to_string());
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(protocol)?;
    let guard = ConnectionGuard(tokio::spawn(async move {
        // Errors surface through `send_request` or the body; nothing to do with them here.
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await.map_err(protocol)?;
    Ok((response, guard))
}

/// Reads up to `cap` body bytes before `deadline`; returns the count and whether the body ended.
async fn drain_capped(mut body: Incoming, cap: usize, deadline: Instant) -> (usize, bool) {
    let mut read = 0usize;
    while read < cap {
        match timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.len());
                }
            }
            Ok(None) => return (read, true),
            // Broken off by the receiver, or out of time: keep the status we have.
            Ok(Some(Err(_))) | Err(_) => return (read.min(cap), false),
        }
    }
    (read.min(cap), read <= cap && body.is_end_stream())
}

#[cfg(test)]
mod tests;
