//! The SSRF guard as tables: schemes, hosts and every address class.

use super::*;

const STRICT: TargetPolicy = TargetPolicy { allow_insecure: false };
const INSECURE: TargetPolicy = TargetPolicy { allow_insecure: true };

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn classifies_every_range() {
    use AddressClass::*;
    let cases: &[(&str, Option<AddressClass>)] = &[
        // IPv4
        ("0.0.0.0", Some(Unspecified)),
        ("0.1.2.3", Some(Unspecified)),
        ("10.0.0.1", Some(Private)),
        ("10.255.255.255", Some(Private)),
        ("100.64.0.1", Some(SharedCgnat)),
        ("100.127.255.254", Some(SharedCgnat)),
        ("100.128.0.1", None),
        ("127.0.0.1", Some(Loopback)),
        ("127.255.0.9", Some(Loopback)),
        ("169.254.1.1", Some(LinkLocal)),
        ("169.254.169.254", Some(Metadata)),
        ("169.254.170.2", Some(Metadata)),
        ("169.254.170.23", Some(Metadata)),
        ("100.100.100.200", Some(Metadata)),
        ("192.0.0.192", Some(Metadata)),
        ("168.63.129.16", Some(Metadata)),
        ("172.15.255.255", None),
        ("172.16.0.1", Some(Private)),
        ("172.31.255.255", Some(Private)),
        ("172.32.0.1", None),
        ("192.0.0.8", Some(ProtocolAssignment)),
        ("192.0.2.10", Some(Documentation)),
        ("192.88.99.1", Some(Reserved)),
        ("192.168.1.1", Some(Private)),
        ("198.18.0.1", Some(Benchmarking)),
        ("198.19.255.255", Some(Benchmarking)),
        ("198.20.0.1", None),
        ("198.51.100.7", Some(Documentation)),
        ("203.0.113.9", Some(Documentation)),
        ("224.0.0.1", Some(Multicast)),
        ("239.255.255.250", Some(Multicast)),
        ("240.0.0.1", Some(Reserved)),
        ("255.255.255.254", Some(Reserved)),
        ("255.255.255.255", Some(Broadcast)),
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        // IPv6
        ("::", Some(Unspecified)),
        ("::1", Some(Loopback)),
        ("fe80::1", Some(LinkLocal)),
        ("febf::1", Some(LinkLocal)),
        ("fec0::1", Some(Private)),
        ("fc00::1", Some(UniqueLocal)),
        ("fd12:3456::1", Some(UniqueLocal)),
        ("fd00:ec2::254", Some(Metadata)),
        ("fd00:ec2::23", Some(Metadata)),
        ("ff02::1", Some(Multicast)),
        ("ff0e::1", Some(Multicast)),
        ("2001:db8::1", Some(Documentation)),
        ("3fff::1", Some(Documentation)),
        ("2001:2::1", Some(Benchmarking)),
        ("2001::1", Some(Reserved)),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some(Reserved)),
        ("2001:1::1", Some(ProtocolAssignment)),
        ("100::1", Some(Reserved)),
        ("64:ff9b:1::1", Some(Reserved)),
        ("5f00::1", Some(Reserved)),
        ("4000::1", Some(Reserved)),
        ("e000::1", Some(Reserved)),
        ("2606:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
        // IPv6 carrying IPv4: judged by the IPv4 inside.
        ("::ffff:127.0.0.1", Some(Loopback)),
        ("::ffff:10.1.2.3", Some(Private)),
        ("::ffff:169.254.169.254", Some(Metadata)),
        ("::ffff:0.0.0.0", Some(Unspecified)),
        ("::ffff:93.184.216.34", None),
        ("::127.0.0.1", Some(Loopback)),
        ("::192.168.0.1", Some(Private)),
        ("::0.0.0.2", Some(Unspecified)),
        ("64:ff9b::127.0.0.1", Some(Loopback)),
        ("64:ff9b::a9fe:a9fe", Some(Metadata)),
        ("64:ff9b::100.64.0.1", Some(SharedCgnat)),
        ("64:ff9b::93.184.216.34", None),
        ("2002:7f00:1::", Some(Loopback)),
        ("2002:a9fe:a9fe::1", Some(Metadata)),
        ("2002:c0a8:0101:1::1", Some(Private)),
        ("2002:5db8:d822::1", None),
    ];
    for (text, want) in cases {
        assert_eq!(forbidden_class(ip(text)), *want, "{text}");
    }
}

#[test]
fn class_names() {
    assert_eq!(AddressClass::Loopback.to_string(), "loopback");
    assert_eq!(AddressClass::Private.to_string(), "private");
    assert_eq!(AddressClass::LinkLocal.to_string(), "link-local");
    assert_eq!(AddressClass::Metadata.to_string(), "metadata");
    let err = TargetError::Forbidden {
        addr: ip("127.0.0.1"),
        class: AddressClass::Loopback,
    };
    assert_eq!(
        err.to_string(),
        "callback URL host is or resolves to a loopback address, which is not allowed"
    );
}

fn refused_class(raw: &str) -> Option<AddressClass> {
    match CallbackUrl::parse(raw, &STRICT) {
        Err(TargetError::Forbidden { class, .. }) => Some(class),
        other => panic!("{raw}: expected Forbidden, got {other:?}"),
    }
}

#[test]
fn ip_literal_spellings_are_normalised_and_refused() {
    use AddressClass::*;
    let cases: &[(&str, AddressClass)] = &[
        ("https://127.0.0.1/", Loopback),
        ("https://2130706433/", Loopback),
        ("https://0x7f000001/", Loopback),
        ("https://0x7f.1/", Loopback),
        ("https://127.1/", Loopback),
        ("https://0177.0.0.1/", Loopback),
        ("https://127.0.0.1./", Loopback),
        ("https://0/", Unspecified),
        ("https://0xa9fea9fe/", Metadata),
        ("https://169.254.169.254/latest/meta-data/", Metadata),
        ("https://10.1/", Private),
        ("https://[::1]/", Loopback),
        ("https://[::ffff:127.0.0.1]/", Loopback),
        ("https://[::ffff:7f00:1]:8443/", Loopback),
        ("https://[0:0:0:0:0:ffff:a9fe:a9fe]/", Metadata),
        ("https://[64:ff9b::10.0.0.1]/", Private),
        ("https://[2002:7f00:1::1]/", Loopback),
        ("https://[fd00:ec2::254]/", Metadata),
        ("https://[fe80::1]/", LinkLocal),
        ("https://[ff02::1]/", Multicast),
        ("https://[::]/", Unspecified),
    ];
    for (raw, class) in cases {
        assert_eq!(refused_class(raw), Some(*class), "{raw}");
    }
}

#[test]
fn public_literals_are_accepted() {
    let u = CallbackUrl::parse("https://93.184.216.34/hook?a=1", &STRICT).expect("public v4");
    assert_eq!(u.ip_literal(), Some(ip("93.184.216.34")));
    assert_eq!(u.port(), 443);
    assert_eq!(u.path_and_query(), "/hook?a=1");
    assert_eq!(u.host_header(), "93.184.216.34");
    let u = CallbackUrl::parse("https://[2606:4700::1111]:8443/", &STRICT).expect("public v6");
    assert_eq!(u.host(), "2606:4700::1111");
    assert_eq!(u.host_header(), "[2606:4700::1111]:8443");
    assert_eq!(u.port(), 8443);
}

#[test]
fn names_are_kept_for_resolution() {
    let u = CallbackUrl::parse("https://Hooks.Example.COM/in", &STRICT).expect("name");
    assert_eq!(u.host(), "hooks.example.com");
    assert_eq!(u.ip_literal(), None);
    assert_eq!(u.scheme(), Scheme::Https);
    assert_eq!(u.path_and_query(), "/in");
    let u = CallbackUrl::parse("https://bücher.example", &STRICT).expect("idn");
    assert_eq!(u.host(), "xn--bcher-kva.example");
    assert_eq!(u.path_and_query(), "/");
}

#[test]
fn scheme_rules() {
    assert_eq!(
        CallbackUrl::parse("http://example.com/", &STRICT),
        Err(TargetError::NotHttps)
    );
    assert_eq!(
        CallbackUrl::parse("ftp://example.com/", &INSECURE),
        Err(TargetError::NotHttps)
    );
    assert_eq!(
        CallbackUrl::parse("file:///etc/passwd", &INSECURE),
        Err(TargetError::NotHttps)
    );
    assert_eq!(
        CallbackUrl::parse("gopher://127.0.0.1:25/", &INSECURE),
        Err(TargetError::NotHttps)
    );
    let u = CallbackUrl::parse("http://example.com/", &INSECURE).expect("http in tests");
    assert_eq!(u.scheme(), Scheme::Http);
    assert_eq!(u.port(), 80);
}

#[test]
fn insecure_policy_allows_local_but_not_metadata() {
    let u = CallbackUrl::parse("http://127.0.0.1:8080/cb", &INSECURE).expect("loopback in tests");
    assert_eq!(u.host_header(), "127.0.0.1:8080");
    assert!(CallbackUrl::parse("http://[::1]:9/", &INSECURE).is_ok());
    assert!(CallbackUrl::parse("http://192.168.1.20/", &INSECURE).is_ok());
    assert!(matches!(
        CallbackUrl::parse("http://169.254.169.254/", &INSECURE),
        Err(TargetError::Forbidden {
            class: AddressClass::Metadata,
            ..
        })
    ));
    assert!(matches!(
        CallbackUrl::parse("http://0.0.0.0:8080/", &INSECURE),
        Err(TargetError::Forbidden {
            class: AddressClass::Unspecified,
            ..
        })
    ));
    assert_eq!(
        CallbackUrl::parse("http://u:p@127.0.0.1/", &INSECURE),
        Err(TargetError::HasCredentials)
    );
}

#[test]
fn refuses_credentials_fragment_length_and_junk() {
    let p = &STRICT;
    assert_eq!(
        CallbackUrl::parse("https://user@example.com/", p),
        Err(TargetError::HasCredentials)
    );
    assert_eq!(
        CallbackUrl::parse("https://user:pw@example.com/", p),
        Err(TargetError::HasCredentials)
    );
    assert_eq!(
        CallbackUrl::parse("https://:pw@example.com/", p),
        Err(TargetError::HasCredentials)
    );
    assert_eq!(
        CallbackUrl::parse("https://example.com/#x", p),
        Err(TargetError::HasFragment)
    );
    assert_eq!(
        CallbackUrl::parse("https://example.com/#", p),
        Err(TargetError::HasFragment)
    );
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
    assert_eq!(CallbackUrl::parse(&long, p), Err(TargetError::TooLong));
    let exact = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - 20));
    assert_eq!(exact.len(), MAX_URL_LEN);
    assert!(CallbackUrl::parse(&exact, p).is_ok());
    // Percent-encoding grows the text past the limit.
    let grows = format!("https://example.com/{}x", " ".repeat(1000));
    assert_eq!(CallbackUrl::parse(&grows, p), Err(TargetError::TooLong));
    assert!(matches!(
        CallbackUrl::parse("not a url", p),
        Err(TargetError::Malformed(_))
    ));
    assert!(matches!(
        CallbackUrl::parse("/relative", p),
        Err(TargetError::Malformed(_))
    ));
    assert!(matches!(
        CallbackUrl::parse("https://", p),
        Err(TargetError::Malformed(_))
    ));
    assert!(matches!(
        CallbackUrl::parse("https://example.com:0/", p),
        Err(TargetError::Malformed(_))
    ));
    assert!(matches!(
        CallbackUrl::parse("https://example.com:99999/", p),
        Err(TargetError::Malformed(_))
    ));
    assert!(matches!(
        CallbackUrl::parse("https://[::1/", p),
        Err(TargetError::Malformed(_))
    ));
}

#[tokio::test]
async fn localhost_resolves_to_loopback_and_is_refused() {
    let u = CallbackUrl::parse("https://localhost:8443/hook", &STRICT).expect("name parses");
    match resolve_checked(&u, &STRICT).await {
        Err(TargetError::Forbidden { addr, class }) => {
            assert!(addr.is_loopback(), "{addr}");
            assert_eq!(class, AddressClass::Loopback);
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    let u = CallbackUrl::parse("http://localhost:8080/hook", &INSECURE).expect("name parses");
    let addrs = resolve_checked(&u, &INSECURE).await.expect("allowed in tests");
    assert!(!addrs.is_empty());
    assert!(
        addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080),
        "{addrs:?}"
    );
}

#[tokio::test]
async fn literal_addresses_skip_dns() {
    let u = CallbackUrl::parse("https://93.184.216.34:8443/", &STRICT).expect("public");
    let addrs = resolve_checked(&u, &STRICT).await.expect("public literal");
    assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.216.34"), 8443)]);
    let u = CallbackUrl::parse("https://[2606:4700::1111]/", &STRICT).expect("public");
    let addrs = resolve_checked(&u, &STRICT).await.expect("public literal");
    assert_eq!(addrs, vec![SocketAddr::new(ip("2606:4700::1111"), 443)]);
    // A literal accepted under the test policy is still refused if checked under the strict one.
    let u = CallbackUrl::parse("http://127.0.0.1:1/", &INSECURE).expect("loopback in tests");
    assert!(matches!(
        resolve_checked(&u, &STRICT).await,
        Err(TargetError::Forbidden { .. })
    ));
}

#[tokio::test]
async fn unresolvable_names_are_refused() {
    let u = CallbackUrl::parse("https://receiver.invalid/", &STRICT).expect("name parses");
    assert!(matches!(
        resolve_checked(&u, &STRICT).await,
        Err(TargetError::Unresolvable(_))
    ));
}
