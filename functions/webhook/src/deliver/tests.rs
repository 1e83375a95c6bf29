//! Delivery over real TLS to a local receiver: signatures, answers, refusals.

use super::*;
use longrun_core::webhook::target::TargetPolicy;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const CA_PEM: &[u8] = include_bytes!("../testdata/ca.pem");
const OTHER_CA_PEM: &[u8] = include_bytes!("../testdata/other-ca.pem");
const LEAF_PEM: &[u8] = include_bytes!("../testdata/leaf.pem");
const LEAF_KEY: &[u8] = include_bytes!("../testdata/leaf.key");

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
    assert_eq!(l.connect_timeout, Duration::from_secs(2));
    assert_eq!(l.total_timeout, Duration::from_secs(5));
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
