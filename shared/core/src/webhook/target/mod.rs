//! SSRF guard for webhook callback URLs.
//!
//! A job's submitter chooses the URL that the worker later POSTs to, so the URL is untrusted input that
//! must not let anyone reach the service's own network: loopback (the Lambda runtime API lives on
//! 127.0.0.1), private ranges, cloud metadata endpoints and the like. The guard works in two steps:
//!
//! 1. [`CallbackUrl::parse`] validates the text when the job is submitted (scheme, length, no credentials,
//!    no fragment) and refuses an IP-literal host right away.
//! 2. [`resolve_checked`] resolves the host name just before delivery and refuses the target if *any* of
//!    the addresses it resolves to is forbidden. The caller then connects to one of exactly the addresses
//!    returned, so a second DNS answer cannot swap in a forbidden address (DNS rebinding).
//!
//! [`forbidden_class`] is the address classifier both steps use; IPv6 forms that embed an IPv4 address
//! (mapped, compatible, NAT64, 6to4) are judged by the IPv4 address inside.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Longest callback URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// How long [`resolve_checked`] waits for the resolver.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which callback targets are acceptable.
///
/// The default is the production policy: `https` only and no internal addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Test runtimes only: also accept `http`, and addresses on the loopback, private, shared (CGNAT),
    /// link-local, unique-local, documentation, benchmarking and IETF-assignment ranges. Metadata,
    /// unspecified, multicast, broadcast and reserved addresses stay refused even then, and so do
    /// credentials, fragments and over-long URLs.
    pub allow_insecure: bool,
}

impl TargetPolicy {
    /// Checks one address against this policy.
    pub fn check(&self, ip: IpAddr) -> Result<(), TargetError> {
        match forbidden_class(ip) {
            Some(class) if !(self.allow_insecure && class.allowed_when_insecure()) => {
                Err(TargetError::Forbidden { addr: ip, class })
            }
            _ => Ok(()),
        }
    }
}

/// Why an address is not an acceptable webhook target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and the deprecated IPv6 site-local fec0::/10.
    Private,
    /// 100.64.0.0/10, the carrier-grade NAT shared address space.
    SharedCgnat,
    /// 169.254.0.0/16 and fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 224.0.0.0/4 and ff00::/8.
    Multicast,
    /// 0.0.0.0/8 and ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 240.0.0.0/4, 192.88.99.0/24, Teredo 2001::/32, the discard prefix 100::/64, local-use NAT64
    /// 64:ff9b:1::/48, SRv6 5f00::/16 and every IPv6 address outside the global unicast block 2000::/3.
    Reserved,
    /// Cloud instance-metadata endpoints: 169.254.169.254, 169.254.170.2, 169.254.170.23,
    /// 100.100.100.200, 192.0.0.192, 168.63.129.16, fd00:ec2::254 and fd00:ec2::23.
    Metadata,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 and 3fff::/20.
    Documentation,
    /// 198.18.0.0/15 and 2001:2::/48.
    Benchmarking,
    /// IETF protocol assignments: 192.0.0.0/24 and 2001::/23.
    ProtocolAssignment,
}

impl AddressClass {
    /// Whether [`TargetPolicy::allow_insecure`] lets an address of this class through.
    pub fn allowed_when_insecure(self) -> bool {
        matches!(
            self,
            Self::Loopback
                | Self::Private
                | Self::SharedCgnat
                | Self::LinkLocal
                | Self::UniqueLocal
                | Self::Documentation
                | Self::Benchmarking
                | Self::ProtocolAssignment
        )
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedCgnat => "shared (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::Metadata => "metadata",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::ProtocolAssignment => "IETF protocol assignment",
        })
    }
}

/// Why a callback URL was refused. The messages are meant for a 422 field error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The scheme is not `https` (or `http` where the policy allows it).
    #[error("callback URL must use https")]
    NotHttps,
    /// The text is not an absolute URL with a host and a usable port.
    #[error("callback URL is not a valid URL: {0}")]
    Malformed(String),
    /// The text is longer than [`MAX_URL_LEN`] bytes.
    #[error("callback URL is longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// The URL carries a user name or password.
    #[error("callback URL must not contain a user name or password")]
    HasCredentials,
    /// The URL carries a `#fragment`.
    #[error("callback URL must not contain a fragment (#...)")]
    HasFragment,
    /// The host is, or resolves to, an address the policy refuses.
    /// The message names the class, not the address: a name's private
    /// address is not told to whoever submitted it.
    #[error("callback URL host is or resolves to a {class} address, which is not allowed")]
    Forbidden {
        /// The refused address.
        addr: IpAddr,
        /// Why it is refused.
        class: AddressClass,
    },
    /// The host name did not resolve, or resolved to nothing, in time.
    #[error("callback URL host could not be resolved: {0}")]
    Unresolvable(String),
}

/// The scheme of a [`CallbackUrl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP; only accepted with [`TargetPolicy::allow_insecure`].
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }

    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A callback URL that passed [`CallbackUrl::parse`].
///
/// Only the syntax and an IP-literal host have been checked; a host name still has to go through
/// [`resolve_checked`] before anything connects to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl {
    url: Url,
    host: String,
    ip: Option<IpAddr>,
    port: u16,
    scheme: Scheme,
    path_and_query: String,
}

impl CallbackUrl {
    /// Parses and validates `raw` under `policy`.
    pub fn parse(raw: &str, policy: &TargetPolicy) -> Result<Self, TargetError> {
        if raw.len() > MAX_URL_LEN {
            return Err(TargetError::TooLong);
        }
        let url = Url::parse(raw).map_err(|e| TargetError::Malformed(e.to_string()))?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" if policy.allow_insecure => Scheme::Http,
            _ => return Err(TargetError::NotHttps),
        };
        // Normalisation (percent-encoding, IPv4 rewriting) can change the length; bound the stored form too.
        if url.as_str().len() > MAX_URL_LEN {
            return Err(TargetError::TooLong);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::HasCredentials);
        }
        if url.fragment().is_some() {
            return Err(TargetError::HasFragment);
        }
        let (host, ip) = match url.host() {
            Some(Host::Domain(name)) if !name.is_empty() => (name.to_owned(), None),
            Some(Host::Ipv4(v4)) => (v4.to_string(), Some(IpAddr::V4(v4))),
            Some(Host::Ipv6(v6)) => (v6.to_string(), Some(IpAddr::V6(v6))),
            _ => return Err(TargetError::Malformed("missing host".to_owned())),
        };
        let port = url.port().unwrap_or(scheme.default_port());
        if port == 0 {
            return Err(TargetError::Malformed("port 0".to_owned()));
        }
        if let Some(ip) = ip {
            policy.check(ip)?;
        }
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Self {
            url,
            host,
            ip,
            port,
            scheme,
            path_and_query,
        })
    }

    /// The normalised URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The normalised URL as text.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host: a lower-case ASCII (punycode) name, or an IP address without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host's address when the URL names an IP literal.
    pub fn ip_literal(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The request target: path plus `?query` when there is one (always starts with `/`).
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The value for a `Host` header: the host (IPv6 bracketed) plus `:port` when it is not the default.
    pub fn host_header(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => self.host.clone(),
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for CallbackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Resolves `url`'s host (within [`RESOLVE_TIMEOUT`]) and checks every address it resolves to.
///
/// Returns the checked addresses, in resolver order without duplicates, each with the URL's port. It fails
/// if the name resolves to nothing, or if *any* address is forbidden under `policy`. Connect only to one of
/// the returned addresses; never resolve the host again.
pub async fn resolve_checked(url: &CallbackUrl, policy: &TargetPolicy) -> Result<Vec<SocketAddr>, TargetError> {
    if let Some(ip) = url.ip {
        policy.check(ip)?;
        return Ok(vec![SocketAddr::new(ip, url.port)]);
    }
    let lookup = tokio::net::lookup_host((url.host.as_str(), url.port));
    let resolved = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => return Err(TargetError::Unresolvable(format!("{}: lookup timed out", url.host))),
        Ok(Err(e)) => return Err(TargetError::Unresolvable(format!("{}: {e}", url.host))),
        Ok(Ok(addrs)) => addrs,
    };
    let mut checked: Vec<SocketAddr> = Vec::new();
    for addr in resolved {
        policy.check(addr.ip())?;
        if !checked.contains(&addr) {
            checked.push(addr);
        }
    }
    if checked.is_empty() {
        return Err(TargetError::Unresolvable(format!("{}: no addresses", url.host)));
    }
    Ok(checked)
}

/// Why `ip` may not be a webhook target under the production policy, or `None` for a public address.
pub fn forbidden_class(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS EC2 / GCP / Azure / OpenStack IMDS
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata and credentials
    Ipv4Addr::new(169, 254, 170, 23),  // AWS EKS pod identity
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud
    Ipv4Addr::new(168, 63, 129, 16),   // Azure wire server
];

const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS EC2 IMDS over IPv6
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023), // AWS EKS pod identity over IPv6
];

/// Whether `addr` lies in `net`/`len`.
fn in_v4(addr: u32, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    addr & mask == u32::from_be_bytes(net) & mask
}

/// Whether `addr` lies in `net`/`len`.
fn in_v6(addr: u128, net: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    addr & mask == net & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if METADATA_V4.contains(&ip) {
        return Some(Metadata);
    }
    let a = u32::from(ip);
    const TABLE: [([u8; 4], u32, AddressClass); 16] = [
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, ProtocolAssignment),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([255, 255, 255, 255], 32, Broadcast),
        // After broadcast, which it contains.
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(net, len, _)| in_v4(a, *net, *len))
        .map(|(_, _, class)| *class)
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let a = u128::from(ip);
    let low32 = Ipv4Addr::from((a & 0xffff_ffff) as u32);
    if a >> 32 == 0xffff || a >> 32 == 0 {
        // IPv4-mapped ::ffff:a.b.c.d, and the deprecated IPv4-compatible ::a.b.c.d.
        return Some(low32);
    }
    if in_v6(a, 0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        // NAT64 well-known prefix.
        return Some(low32);
    }
    if in_v6(a, 0x2002_0000_0000_0000_0000_0000_0000_0000, 16) {
        // 6to4: the IPv4 address is bits 16..48.
        return Some(Ipv4Addr::from(((a >> 80) & 0xffff_ffff) as u32));
    }
    None
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    if METADATA_V6.contains(&ip) {
        return Some(Metadata);
    }
    let a = u128::from(ip);
    // First match wins: the narrow 2001:: prefixes come before 2001::/23.
    const TABLE: [(u128, u32, AddressClass); 12] = [
        (0x0064_ff9b_0001 << 80, 48, Reserved),  // local-use NAT64
        (0x0100 << 112, 64, Reserved),           // discard-only
        (0x2001_0000 << 96, 32, Reserved),       // Teredo
        (0x2001_0002 << 96, 48, Benchmarking),   // 2001:2::/48
        (0x2001_0db8 << 96, 32, Documentation),  // 2001:db8::/32
        (0x2001 << 112, 23, ProtocolAssignment), // 2001::/23
        (0x3fff << 112, 20, Documentation),      // 3fff::/20
        (0x5f00 << 112, 16, Reserved),           // SRv6 SIDs
        (0xfc00 << 112, 7, UniqueLocal),         // fc00::/7
        (0xfe80 << 112, 10, LinkLocal),          // fe80::/10
        (0xfec0 << 112, 10, Private),            // deprecated site-local
        (0xff00 << 112, 8, Multicast),           // ff00::/8
    ];
    if let Some((_, _, class)) = TABLE.iter().find(|(net, len, _)| in_v6(a, *net, *len)) {
        return Some(*class);
    }
    // Everything outside global unicast 2000::/3 is unallocated or special-purpose.
    (!in_v6(a, 0x2000 << 112, 3)).then_some(Reserved)
}

#[cfg(test)]
mod tests;
