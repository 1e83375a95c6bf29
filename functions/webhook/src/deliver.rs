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
    /// Bound on the TCP connect plus the TLS handshake. Default 3 s.
    pub connect_timeout: Duration,
    /// Bound on the whole exchange, connect included. Default 10 s. If it runs out while the response
    /// body is being read, the status already received is returned.
    pub total_timeout: Duration,
    /// Response body bytes read at most; the rest is dropped unread. Default 64 KiB.
    pub max_response_bytes: usize,
}

impl Default for DeliveryLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
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
mod tests {
    use super::*;
    use longrun_core::webhook::target::TargetPolicy;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    const CA_PEM: &[u8] = include_bytes!("testdata/ca.pem");
    const OTHER_CA_PEM: &[u8] = include_bytes!("testdata/other-ca.pem");
    const LEAF_PEM: &[u8] = include_bytes!("testdata/leaf.pem");
    const LEAF_KEY: &[u8] = include_bytes!("testdata/leaf.key");

    /// A request as the test server saw it.
    #[derive(Debug)]
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.head.lines().skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then_some(v.trim())
            })
        }
    }

    async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Seen> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut seen = Seen {
            head,
            body: buf[head_end..].to_vec(),
        };
        let len: usize = seen.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while seen.body.len() < len {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            seen.body.extend_from_slice(&chunk[..n]);
        }
        Some(seen)
    }

    async fn listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("local addr");
        (l, addr)
    }

    /// Answers one request with `response` and hands back what it saw.
    fn serve_once(l: TcpListener, response: impl Into<Vec<u8>>) -> JoinHandle<Option<Seen>> {
        let response = response.into();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.ok()?;
            let seen = read_request(&mut s).await?;
            s.write_all(&response).await.ok()?;
            s.shutdown().await.ok()?;
            Some(seen)
        })
    }

    fn url(raw: &str) -> CallbackUrl {
        CallbackUrl::parse(raw, &TargetPolicy { allow_insecure: true }).expect("test URL")
    }

    fn limits() -> DeliveryLimits {
        DeliveryLimits {
            total_timeout: Duration::from_secs(5),
            ..DeliveryLimits::default()
        }
    }

    #[test]
    fn default_limits() {
        let l = DeliveryLimits::default();
        assert_eq!(l.connect_timeout, Duration::from_secs(3));
        assert_eq!(l.total_timeout, Duration::from_secs(10));
        assert_eq!(l.max_response_bytes, 65536);
    }

    #[tokio::test]
    async fn returns_200_and_sends_headers_and_body_to_the_given_address() {
        let (l, addr) = listener().await;
        let server = serve_once(l, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        // The name does not resolve: the connection must go to `addr` without any lookup.
        let u = url(&format!("http://receiver.invalid:{}/hook?job=j1", addr.port()));
        let headers = [
            (HeaderName::from_static("webhook-id"), HeaderValue::from_static("msg_1")),
            (
                HeaderName::from_static("webhook-signature"),
                HeaderValue::from_static("v1,abc"),
            ),
            (header::HOST, HeaderValue::from_static("evil.example")),
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
        ];
        let body = Bytes::from_static(br#"{"job":"j1"}"#);
        let r = post(&u, addr, &headers, body.clone(), &limits())
            .await
            .expect("delivered");
        assert_eq!(
            r,
            DeliveryResponse {
                status: StatusCode::OK,
                body_len: 2,
                body_complete: true
            }
        );
        let seen = server.await.expect("server task").expect("request seen");
        assert!(seen.head.starts_with("POST /hook?job=j1 HTTP/1.1\r\n"), "{}", seen.head);
        assert_eq!(
            seen.header("host"),
            Some(format!("receiver.invalid:{}", addr.port()).as_str())
        );
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.header("user-agent"), Some(USER_AGENT));
        assert_eq!(seen.header("webhook-id"), Some("msg_1"));
        assert_eq!(seen.header("webhook-signature"), Some("v1,abc"));
        assert_eq!(seen.header("content-length"), Some(body.len().to_string().as_str()));
        let count = |name: &str| {
            seen.head
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with(name))
                .count()
        };
        assert_eq!(count("host:"), 1, "{}", seen.head);
        assert_eq!(count("content-type:"), 1, "{}", seen.head);
        assert_eq!(seen.body, body);
    }

    #[tokio::test]
    async fn returns_500() {
        let (l, addr) = listener().await;
        let _server = serve_once(l, b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
        let u = url(&format!("http://127.0.0.1:{}/", addr.port()));
        let r = post(&u, addr, &[], Bytes::from_static(b"{}"), &limits())
            .await
            .expect("answered");
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.body_len, 0);
    }

    #[tokio::test]
    async fn redirect_is_returned_not_followed() {
        let (second, second_addr) = listener().await;
        let (l, addr) = listener().await;
        let location = format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{}/elsewhere\r\ncontent-length: 0\r\n\r\n",
            second_addr.port()
        );
        let _server = serve_once(l, location);
        let u = url(&format!("http://127.0.0.1:{}/hook", addr.port()));
        let r = post(&u, addr, &[], Bytes::from_static(b"{}"), &limits())
            .await
            .expect("answered");
        assert_eq!(r.status, StatusCode::FOUND);
        let followed = tokio::time::timeout(Duration::from_millis(300), second.accept()).await;
        assert!(followed.is_err(), "the redirect target was contacted");
    }

    #[tokio::test]
    async fn silent_server_hits_total_timeout() {
        let (l, addr) = listener().await;
        let _server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.ok()?;
            let _ = read_request(&mut s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(s)
        });
        let u = url(&format!("http://127.0.0.1:{}/", addr.port()));
        let short = DeliveryLimits {
            total_timeout: Duration::from_millis(300),
            ..DeliveryLimits::default()
        };
        let started = std::time::Instant::now();
        let err = post(&u, addr, &[], Bytes::new(), &short)
            .await
            .expect_err("must time out");
        assert_eq!(
            err,
            DeliveryError::Timeout {
                stage: "request",
                after: Duration::from_millis(300)
            }
        );
        assert_eq!(err.to_string(), "request timed out after 300ms");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn huge_body_is_capped() {
        let (l, addr) = listener().await;
        let _server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.ok()?;
            read_request(&mut s).await?;
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .ok()?;
            let mut chunk = b"4000\r\n".to_vec();
            chunk.extend_from_slice(&[b'x'; 0x4000]);
            chunk.extend_from_slice(b"\r\n");
            // Up to 1 GiB, but the write fails as soon as the client hangs up.
            for _ in 0..65536 {
                s.write_all(&chunk).await.ok()?;
            }
            Some(())
        });
        let u = url(&format!("http://127.0.0.1:{}/", addr.port()));
        let capped = DeliveryLimits {
            max_response_bytes: 100_000,
            ..limits()
        };
        let started = std::time::Instant::now();
        let r = post(&u, addr, &[], Bytes::new(), &capped).await.expect("answered");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body_len, 100_000);
        assert!(!r.body_complete);
    }

    #[tokio::test]
    async fn refused_connection_and_garbage_answers_are_errors() {
        let (l, addr) = listener().await;
        drop(l);
        let u = url(&format!("http://127.0.0.1:{}/", addr.port()));
        let err = post(&u, addr, &[], Bytes::new(), &limits())
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, DeliveryError::Connect { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!("connect to {addr} failed")),
            "{err}"
        );

        let (l, addr) = listener().await;
        let _server = serve_once(l, b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        let u = url(&format!("http://127.0.0.1:{}/", addr.port()));
        let err = post(&u, addr, &[], Bytes::new(), &limits())
            .await
            .expect_err("not HTTP");
        assert!(matches!(err, DeliveryError::Protocol(_)), "{err:?}");
    }

    fn roots(pem: &[u8]) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots.add(cert.expect("test CA PEM")).expect("test CA");
        }
        roots
    }

    /// An HTTPS server for `receiver.test` that answers one request with 204.
    fn serve_tls_once(l: TcpListener) -> JoinHandle<Option<Seen>> {
        let cert = CertificateDer::from_pem_slice(LEAF_PEM).expect("leaf PEM");
        let key = PrivateKeyDer::from_pem_slice(LEAF_KEY).expect("key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server cert");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            let (s, _) = l.accept().await.ok()?;
            let mut s = acceptor.accept(s).await.ok()?;
            let seen = read_request(&mut s).await?;
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.ok()?;
            s.shutdown().await.ok()?;
            Some(seen)
        })
    }

    #[tokio::test]
    async fn https_with_injected_root() {
        let (l, addr) = listener().await;
        let server = serve_tls_once(l);
        let u = CallbackUrl::parse(
            &format!("https://receiver.test:{}/tls", addr.port()),
            &TargetPolicy::default(),
        )
        .expect("https URL");
        let tls = tls_config_with_roots(roots(CA_PEM)).expect("client config");
        let r = post_with_tls(&u, addr, &[], Bytes::from_static(b"{}"), &limits(), Some(tls))
            .await
            .expect("https");
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let seen = server.await.expect("server task").expect("request seen");
        assert!(seen.head.starts_with("POST /tls HTTP/1.1\r\n"));
        assert_eq!(
            seen.header("host"),
            Some(format!("receiver.test:{}", addr.port()).as_str())
        );
    }

    #[tokio::test]
    async fn https_refuses_untrusted_or_mismatched_certificates() {
        let (l, addr) = listener().await;
        let _server = serve_tls_once(l);
        let u = url(&format!("https://receiver.test:{}/", addr.port()));
        let tls = tls_config_with_roots(roots(OTHER_CA_PEM)).expect("client config");
        let err = post_with_tls(&u, addr, &[], Bytes::new(), &limits(), Some(tls))
            .await
            .expect_err("untrusted");
        assert!(
            matches!(&err, DeliveryError::Tls { host, .. } if host == "receiver.test"),
            "{err:?}"
        );
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");

        let (l, addr) = listener().await;
        let _server = serve_tls_once(l);
        let u = url(&format!("https://other.test:{}/", addr.port()));
        let tls = tls_config_with_roots(roots(CA_PEM)).expect("client config");
        let err = post_with_tls(&u, addr, &[], Bytes::new(), &limits(), Some(tls))
            .await
            .expect_err("wrong name");
        assert!(matches!(err, DeliveryError::Tls { .. }), "{err:?}");
        assert!(err.to_string().contains("not valid for name"), "{err}");
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_error() {
        let (l, addr) = listener().await;
        let _server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.ok()?;
            s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await
                .ok()?;
            s.shutdown().await.ok()
        });
        let u = url(&format!("https://receiver.test:{}/", addr.port()));
        let tls = tls_config_with_roots(roots(CA_PEM)).expect("client config");
        let err = post_with_tls(&u, addr, &[], Bytes::new(), &limits(), Some(tls))
            .await
            .expect_err("not TLS");
        assert!(matches!(err, DeliveryError::Tls { .. }), "{err:?}");
    }
}
