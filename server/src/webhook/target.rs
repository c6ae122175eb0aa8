//! Where a payment webhook may be sent: the checks on a `callback_url`
//! (issue 18, item 7) and the resolver that makes the connection go only to
//! an address that passed them.
//!
//! # The rules
//!
//! * The URL is `https` (or `http` when [`TargetPolicy::allow_http`]), has a
//!   host and no user info.
//! * Its port is the scheme's own (443; 80 for an allowed `http`) or one of
//!   [`TargetPolicy::allow_ports`].
//! * A host name is not `localhost` or a name under `.localhost`, `.local`,
//!   `.internal` or `.home.arpa`, and has at least one dot (a single label
//!   reaches the resolver's search domains, i.e. the operator's own network).
//! * Every address — the literal in the URL, or **each** address the name
//!   resolves to — is a globally reachable unicast address: not in any block
//!   of the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890,
//!   RFC 8190; the blocks are listed in [`refusal`] with their RFCs), not
//!   multicast, and for IPv6 inside global unicast `2000::/3`; an IPv4
//!   address embedded in an IPv6 one (IPv4-mapped `::ffff:0:0/96`, NAT64
//!   `64:ff9b::/96`, 6to4 `2002::/16`) is checked as IPv4. Addresses in
//!   [`TargetPolicy::allow_nets`] pass (a receiver on the operator's own
//!   network).
//! * [`TargetPolicy::allow_any`] lifts the port, name and address rules
//!   (tests, or a receiver you trust on a private network).
//!
//! # Resolve once, connect to what was checked
//!
//! [`webhook_client`] builds the HTTP client that delivers webhooks with
//! [`CheckedResolver`] as its only resolver: for each new connection the name
//! is resolved once, every address is checked, and the client is handed only
//! those checked addresses (a name with any refused address is refused whole).
//! There is no second lookup that a rebinding DNS server could answer
//! differently. A URL whose host is an address literal never reaches a
//! resolver, so [`check_url`] runs again before each attempt. The client
//! follows no redirect and uses no proxy (a proxy would connect on our
//! behalf to an address we never checked).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What the operator allows beyond the rules in the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Plain-`http` URLs are accepted (their own port is then 80).
    pub allow_http: bool,
    /// No port, name or address rule at all (tests, a trusted private network).
    pub allow_any: bool,
    /// Ports accepted besides the scheme's own.
    pub allow_ports: Vec<u16>,
    /// Networks whose addresses pass even though a registry lists them.
    pub allow_nets: Vec<IpNet>,
}

/// Why an address is refused: the registry block it falls in and, for an
/// IPv4 address embedded in an IPv6 one, the IPv6 block that embeds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The block and its name, e.g. `"169.254.0.0/16 link-local (RFC 3927)"`.
    pub block: &'static str,
    /// The embedding IPv6 block, e.g. `Some("2002::/16 6to4 (RFC 3056)")`.
    pub via: Option<&'static str>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.block)?;
        if let Some(via) = self.via {
            write!(f, ", embedded in {via}")?;
        }
        Ok(())
    }
}

/// Why a `callback_url` (or one address it resolves to) was refused.
/// `Display` is a phrase that follows `"callback_url "`, for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// Not an absolute URL.
    NotUrl,
    /// Neither `https` nor an allowed `http`.
    Scheme,
    /// It carries a user name or password.
    UserInfo,
    /// It has no host.
    NoHost,
    /// Its port is not the scheme's own nor an allowed one.
    Port(u16),
    /// Its host name is local (`localhost`, `.local`, a single label, …).
    LocalName,
    /// An address (literal or resolved) is in a refused block.
    Address {
        /// The address.
        addr: IpAddr,
        /// The block it falls in.
        refusal: Refusal,
    },
    /// The name resolved to no address.
    NoAddress,
    /// The name could not be resolved (no answer, or an error).
    Lookup,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::NotUrl => f.write_str("is not an absolute URL"),
            TargetError::Scheme => f.write_str("must be https"),
            TargetError::UserInfo => f.write_str("must not carry user info"),
            TargetError::NoHost => f.write_str("has no host"),
            TargetError::Port(p) => write!(f, "uses port {p}, which this server does not allow"),
            TargetError::LocalName => f.write_str("names a local host"),
            TargetError::Address { addr, refusal } => {
                write!(f, "points at {addr}, in {refusal}, which is refused")
            }
            TargetError::NoAddress => f.write_str("resolves to no address"),
            TargetError::Lookup => f.write_str("cannot be resolved"),
        }
    }
}

impl std::error::Error for TargetError {}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

/// The IANA IPv4 Special-Purpose Address Registry (every entry; the more
/// specific first where they nest), plus multicast (RFC 5771), which has its
/// own registry.
const V4_BLOCKS: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "0.0.0.0/8 \"this network\" (RFC 791)"),
    (v4(10, 0, 0, 0, 8), "10.0.0.0/8 private-use (RFC 1918)"),
    (
        v4(100, 64, 0, 0, 10),
        "100.64.0.0/10 shared address space (RFC 6598)",
    ),
    (v4(127, 0, 0, 0, 8), "127.0.0.0/8 loopback (RFC 1122)"),
    (
        v4(169, 254, 0, 0, 16),
        "169.254.0.0/16 link-local (RFC 3927)",
    ),
    (
        v4(172, 16, 0, 0, 12),
        "172.16.0.0/12 private-use (RFC 1918)",
    ),
    (
        v4(192, 0, 0, 0, 24),
        "192.0.0.0/24 IETF protocol assignments (RFC 6890)",
    ),
    (
        v4(192, 0, 2, 0, 24),
        "192.0.2.0/24 documentation, TEST-NET-1 (RFC 5737)",
    ),
    (
        v4(192, 31, 196, 0, 24),
        "192.31.196.0/24 AS112-v4 (RFC 7535)",
    ),
    (v4(192, 52, 193, 0, 24), "192.52.193.0/24 AMT (RFC 7450)"),
    (
        v4(192, 88, 99, 0, 24),
        "192.88.99.0/24 deprecated 6to4 relay anycast (RFC 7526)",
    ),
    (
        v4(192, 168, 0, 0, 16),
        "192.168.0.0/16 private-use (RFC 1918)",
    ),
    (
        v4(192, 175, 48, 0, 24),
        "192.175.48.0/24 direct delegation AS112 service (RFC 7534)",
    ),
    (
        v4(198, 18, 0, 0, 15),
        "198.18.0.0/15 benchmarking (RFC 2544)",
    ),
    (
        v4(198, 51, 100, 0, 24),
        "198.51.100.0/24 documentation, TEST-NET-2 (RFC 5737)",
    ),
    (
        v4(203, 0, 113, 0, 24),
        "203.0.113.0/24 documentation, TEST-NET-3 (RFC 5737)",
    ),
    (v4(224, 0, 0, 0, 4), "224.0.0.0/4 multicast (RFC 5771)"),
    (
        v4(255, 255, 255, 255, 32),
        "255.255.255.255/32 limited broadcast (RFC 919)",
    ),
    (v4(240, 0, 0, 0, 4), "240.0.0.0/4 reserved (RFC 1112)"),
];

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7), len)
}

/// What an IPv6 block means for an address in it.
#[derive(Clone, Copy)]
enum V6Rule {
    /// Refused.
    Refuse,
    /// The IPv4 address in bits 96..128 decides (IPv4-mapped, NAT64).
    Low32,
    /// The IPv4 address in bits 16..48 decides (6to4).
    SixToFour,
}

/// The IANA IPv6 Special-Purpose Address Registry (every entry, the more
/// specific first), plus the IPv4-compatible `::/96` (deprecated by RFC
/// 4291), site-local (deprecated by RFC 3879) and multicast. Anything not
/// listed must still be inside global unicast `2000::/3`.
const V6_BLOCKS: &[(Ipv6Net, &str, V6Rule)] = &[
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 128),
        "::/128 unspecified (RFC 4291)",
        V6Rule::Refuse,
    ),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
        "::1/128 loopback (RFC 4291)",
        V6Rule::Refuse,
    ),
    (
        v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96),
        "::ffff:0:0/96 IPv4-mapped (RFC 4291)",
        V6Rule::Low32,
    ),
    (
        v6([0, 0, 0, 0, 0, 0, 0, 0], 96),
        "::/96 IPv4-compatible, deprecated (RFC 4291)",
        V6Rule::Refuse,
    ),
    (
        v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96),
        "64:ff9b::/96 IPv4/IPv6 translation, NAT64 (RFC 6052)",
        V6Rule::Low32,
    ),
    (
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "64:ff9b:1::/48 local-use IPv4/IPv6 translation (RFC 8215)",
        V6Rule::Refuse,
    ),
    (
        v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
        "100::/64 discard-only (RFC 6666)",
        V6Rule::Refuse,
    ),
    (
        v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64),
        "100:0:0:1::/64 dummy IPv6 prefix (RFC 9780)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
        "2001::/32 Teredo (RFC 4380)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),
        "2001:2::/48 benchmarking (RFC 5180)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32),
        "2001:3::/32 AMT (RFC 7450)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48),
        "2001:4:112::/48 AS112-v6 (RFC 7535)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),
        "2001:10::/28 ORCHID, deprecated (RFC 4843)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),
        "2001:20::/28 ORCHIDv2 (RFC 7343)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28),
        "2001:30::/28 drone remote ID entity tags (RFC 9374)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "2001::/23 IETF protocol assignments (RFC 2928)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "2001:db8::/32 documentation (RFC 3849)",
        V6Rule::Refuse,
    ),
    (
        v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),
        "2002::/16 6to4 (RFC 3056)",
        V6Rule::SixToFour,
    ),
    (
        v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48),
        "2620:4f:8000::/48 direct delegation AS112 service (RFC 7534)",
        V6Rule::Refuse,
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "3fff::/20 documentation (RFC 9637)",
        V6Rule::Refuse,
    ),
    (
        v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16),
        "5f00::/16 segment routing (SRv6) SIDs (RFC 9602)",
        V6Rule::Refuse,
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "fc00::/7 unique-local (RFC 4193)",
        V6Rule::Refuse,
    ),
    (
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "fe80::/10 link-local (RFC 4291)",
        V6Rule::Refuse,
    ),
    (
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "fec0::/10 site-local, deprecated (RFC 3879)",
        V6Rule::Refuse,
    ),
    (
        v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        "ff00::/8 multicast (RFC 4291)",
        V6Rule::Refuse,
    ),
];

const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Why `ip` may not receive a webhook, or `None` if it is a globally
/// reachable unicast address. The blocks are those of the IANA IPv4 and IPv6
/// Special-Purpose Address Registries (RFC 6890 and the RFCs named in each
/// block's text), multicast, deprecated IPv4-compatible and site-local IPv6,
/// and any IPv6 address outside global unicast `2000::/3`. An IPv4 address
/// inside IPv4-mapped, NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) IPv6 is
/// judged as IPv4.
#[must_use]
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(a) => refusal_v4(a),
        IpAddr::V6(a) => refusal_v6(a),
    }
}

fn refusal_v4(a: Ipv4Addr) -> Option<Refusal> {
    V4_BLOCKS
        .iter()
        .find(|(net, _)| net.contains(&a))
        .map(|(_, block)| Refusal { block, via: None })
}

fn refusal_v6(a: Ipv6Addr) -> Option<Refusal> {
    let Some((_, block, rule)) = V6_BLOCKS.iter().find(|(net, _, _)| net.contains(&a)) else {
        return (!GLOBAL_UNICAST.contains(&a)).then_some(Refusal {
            block: "an IPv6 block outside global unicast 2000::/3 (IANA IPv6 address space)",
            via: None,
        });
    };
    let embedded = match rule {
        V6Rule::Refuse => return Some(Refusal { block, via: None }),
        V6Rule::Low32 | V6Rule::SixToFour => embedded_v4(a)?,
    };
    refusal_v4(embedded).map(|inner| Refusal {
        block: inner.block,
        via: Some(block),
    })
}

/// The IPv4 address inside IPv4-mapped, NAT64 (`64:ff9b::/96`) or 6to4
/// (`2002::/16`) IPv6, which is where such an address really goes.
#[must_use]
pub fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let (hi, lo) = match V6_BLOCKS.iter().find(|(net, _, _)| net.contains(&a))?.2 {
        V6Rule::Refuse => return None,
        V6Rule::Low32 => (s[6], s[7]),
        V6Rule::SixToFour => (s[1], s[2]),
    };
    Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
}

/// Checks one address against `policy`.
///
/// # Errors
/// [`TargetError::Address`] naming the block, unless the policy allows any
/// address or one of its networks holds `ip` (or, for IPv4-mapped IPv6, the
/// IPv4 address inside).
pub fn check_ip(ip: IpAddr, policy: &TargetPolicy) -> Result<(), TargetError> {
    if policy.allow_any {
        return Ok(());
    }
    let mapped = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    let allowed = |x: IpAddr| policy.allow_nets.iter().any(|n| n.contains(&x));
    if allowed(ip) || mapped.is_some_and(allowed) {
        return Ok(());
    }
    match refusal(ip) {
        None => Ok(()),
        Some(refusal) => Err(TargetError::Address { addr: ip, refusal }),
    }
}

/// Checks every address a name resolved to: all must pass, and there must
/// be at least one.
///
/// # Errors
/// [`TargetError::NoAddress`] for none; the first refused address's
/// [`TargetError::Address`].
pub fn check_all(addrs: &[IpAddr], policy: &TargetPolicy) -> Result<(), TargetError> {
    if addrs.is_empty() {
        return Err(TargetError::NoAddress);
    }
    addrs.iter().try_for_each(|&ip| check_ip(ip, policy))
}

/// Whether a host name is one that only the local machine or network can
/// resolve: `localhost` and the names under `.localhost` (RFC 6761),
/// `.local` (mDNS, RFC 6762), `.home.arpa` (RFC 8375) and `.internal`
/// (reserved for private use by ICANN in 2024), and a single label (which
/// the resolver completes with its search domains).
#[must_use]
pub fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if !name.contains('.') {
        return true;
    }
    ["localhost", "local", "home.arpa", "internal"]
        .iter()
        .any(|tld| name == *tld || name.ends_with(&format!(".{tld}")))
}

/// Checks a `callback_url` (see the module docs for the rules) and returns
/// it parsed (the `url` crate's normal form: `https://2852039166/` reads as
/// `https://169.254.169.254/`, `0x7f.1` as `127.0.0.1`).
///
/// # Errors
/// The [`TargetError`] of the first rule broken.
pub fn check_url(text: &str, policy: &TargetPolicy) -> Result<url::Url, TargetError> {
    let url = url::Url::parse(text).map_err(|_| TargetError::NotUrl)?;
    let own_port = match url.scheme() {
        "https" => 443,
        "http" if policy.allow_http => 80,
        _ => return Err(TargetError::Scheme),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::UserInfo);
    }
    let port = url.port().unwrap_or(own_port);
    if !policy.allow_any && port != own_port && !policy.allow_ports.contains(&port) {
        return Err(TargetError::Port(port));
    }
    match url.host() {
        None => return Err(TargetError::NoHost),
        Some(url::Host::Ipv4(a)) => check_ip(IpAddr::V4(a), policy)?,
        Some(url::Host::Ipv6(a)) => check_ip(IpAddr::V6(a), policy)?,
        Some(url::Host::Domain(d)) => {
            if d.is_empty() {
                return Err(TargetError::NoHost);
            }
            if !policy.allow_any && is_local_name(d) {
                return Err(TargetError::LocalName);
            }
        }
    }
    Ok(url)
}

/// Resolves names for the webhook client and hands it only addresses that
/// pass [`check_ip`]: a name with any refused address is refused whole. The
/// lookup is the system's (`getaddrinfo`, through tokio) or, with a DNS
/// server given, that server's (UDP, then TCP if truncated).
#[derive(Clone)]
pub struct CheckedResolver {
    policy: Arc<TargetPolicy>,
    dns: Option<Arc<hickory_resolver::TokioResolver>>,
}

impl fmt::Debug for CheckedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedResolver")
            .field("policy", &self.policy)
            .field("dns", &self.dns.is_some())
            .finish()
    }
}

impl CheckedResolver {
    /// A resolver checking against `policy`, asking `dns_server` if given
    /// (else the system resolver). Queries A and AAAA, so that every address
    /// of the name is checked.
    #[must_use]
    pub fn new(policy: Arc<TargetPolicy>, dns_server: Option<SocketAddr>) -> Self {
        use hickory_resolver::config::{
            LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts,
        };
        let dns = dns_server.map(|server| {
            let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
            let config = ResolverConfig::from_parts(None, Vec::new(), group);
            let mut opts = ResolverOpts::default();
            opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            opts.timeout = Duration::from_secs(2);
            opts.attempts = 2;
            opts.ndots = 0;
            let provider = hickory_resolver::name_server::TokioConnectionProvider::default();
            let mut builder = hickory_resolver::Resolver::builder_with_config(config, provider);
            *builder.options_mut() = opts;
            Arc::new(builder.build())
        });
        CheckedResolver { policy, dns }
    }

    /// Resolves `host` once and checks every address.
    ///
    /// # Errors
    /// [`TargetError::Lookup`] when the lookup fails, else those of
    /// [`check_all`].
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, TargetError> {
        let addrs: Vec<IpAddr> = match &self.dns {
            Some(r) => r
                .lookup_ip(host)
                .await
                .map_err(|_| TargetError::Lookup)?
                .iter()
                .collect(),
            None => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|_| TargetError::Lookup)?
                .map(|a| a.ip())
                .collect(),
        };
        check_all(&addrs, &self.policy)?;
        Ok(addrs)
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            match this.lookup(name.as_str()).await {
                Ok(addrs) => {
                    let addrs: reqwest::dns::Addrs =
                        Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                    Ok(addrs)
                }
                Err(e) => {
                    tracing::warn!(host = name.as_str(), reason = %e, "webhook: target refused");
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// The HTTP client that delivers webhooks: [`CheckedResolver`] as its only
/// resolver, no redirects, no proxy, `timeout_ms` for a whole exchange.
///
/// # Errors
/// `reqwest`'s, if its TLS backend cannot start.
pub fn webhook_client(
    policy: Arc<TargetPolicy>,
    dns_server: Option<SocketAddr>,
    timeout_ms: u64,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(timeout_ms.max(1)))
        .dns_resolver(Arc::new(CheckedResolver::new(policy, dns_server)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The SSRF row of issue 18, and the spellings `url` turns into them.
    #[test]
    fn issue_18_forms_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("https://[::127.0.0.1]/", "::/96"),
            ("https://[64:ff9b::a9fe:a9fe]/", "169.254.0.0/16"),
            ("https://[64:ff9b::169.254.169.254]/", "169.254.0.0/16"),
            ("https://[64:ff9b:1::a9fe:a9fe]/", "64:ff9b:1::/48"),
            ("https://[2002:a9fe:a9fe::]/", "169.254.0.0/16"),
            ("https://[2002:a9fe:a9fe:1::1]/", "169.254.0.0/16"),
            ("https://[::ffff:169.254.169.254]/", "169.254.0.0/16"),
            ("https://[::ffff:a9fe:a9fe]/", "169.254.0.0/16"),
            ("https://198.18.0.1/", "198.18.0.0/15"),
            ("https://2852039166/", "169.254.0.0/16"),
            ("https://0xA9FEA9FE/", "169.254.0.0/16"),
            ("https://0251.0376.0251.0376/", "169.254.0.0/16"),
            ("https://0xa9.0xfe.0xa9.0xfe/", "169.254.0.0/16"),
            ("https://169.16689662/", "169.254.0.0/16"),
            ("https://2130706433/", "127.0.0.0/8"),
            ("https://0x7f.1/", "127.0.0.0/8"),
            ("https://0177.0.0.1/", "127.0.0.0/8"),
            ("https://127.1/", "127.0.0.0/8"),
            ("https://0/", "0.0.0.0/8"),
        ];
        for (url, block) in cases {
            match check_url(url, &strict()) {
                Err(TargetError::Address { refusal, .. }) => {
                    assert!(refusal.block.starts_with(block), "{url}: {refusal}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(
            check_url("https://shop.example:22/", &strict()),
            Err(TargetError::Port(22))
        );
    }

    #[test]
    fn every_v4_registry_block_is_refused() {
        for a in [
            "0.0.0.0",
            "0.255.255.255",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.9",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refusal(ip(a)).is_some(), "{a}");
        }
        for a in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(refusal(ip(a)), None, "{a}");
        }
        assert_eq!(
            refusal(ip("255.255.255.255")).unwrap().block,
            "255.255.255.255/32 limited broadcast (RFC 919)"
        );
    }

    #[test]
    fn every_v6_registry_block_is_refused() {
        for a in [
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::808:808",
            "100::1",
            "100:0:0:1::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:1::1",
            "2001:1::2",
            "2001:1::3",
            "2001:2::1",
            "2001:3::1",
            "2001:4:112::1",
            "2001:10::1",
            "2001:20::1",
            "2001:30::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2620:4f:8000::1",
            "3fff::1",
            "3fff:fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "200::1",
            "4000::1",
            "1000::1",
        ] {
            assert!(refusal(ip(a)).is_some(), "{a}");
        }
        for a in [
            "2600::1",
            "2a00:1450:4001::1",
            "2001:200::1",
            "2001:4860:4860::8888",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
            "2620:4f:8001::1",
            "3fff:1000::1",
        ] {
            assert_eq!(refusal(ip(a)), None, "{a}");
        }
        let r = refusal(ip("2002:a9fe:a9fe::")).unwrap();
        assert_eq!(r.block, "169.254.0.0/16 link-local (RFC 3927)");
        assert_eq!(r.via, Some("2002::/16 6to4 (RFC 3056)"));
    }

    #[test]
    fn embedded_v4_is_found_where_each_block_puts_it() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let four = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(embedded_v4(a("::ffff:1.2.3.4")), four("1.2.3.4"));
        assert_eq!(embedded_v4(a("64:ff9b::102:304")), four("1.2.3.4"));
        assert_eq!(embedded_v4(a("2002:102:304:5::6")), four("1.2.3.4"));
        assert_eq!(embedded_v4(a("2600::1")), None);
        assert_eq!(embedded_v4(a("::1")), None);
    }

    #[test]
    fn url_rules() {
        let p = strict();
        assert!(check_url("https://shop.example/hook", &p).is_ok());
        assert!(check_url("https://shop.example:443/hook", &p).is_ok());
        assert!(check_url("https://8.8.8.8/hook", &p).is_ok());
        assert!(check_url("https://[2600::1]/hook", &p).is_ok());
        assert_eq!(
            check_url("https://shop.example:8443/", &p),
            Err(TargetError::Port(8443))
        );
        assert_eq!(
            check_url("http://shop.example/", &p),
            Err(TargetError::Scheme)
        );
        assert_eq!(
            check_url("ftp://shop.example/", &p),
            Err(TargetError::Scheme)
        );
        assert_eq!(check_url("not a url", &p), Err(TargetError::NotUrl));
        assert_eq!(
            check_url("https://u:p@shop.example/", &p),
            Err(TargetError::UserInfo)
        );
        for local in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://a.localhost/",
            "https://printer.local/",
            "https://router.home.arpa/",
            "https://metadata.google.internal/",
            "https://metadata/",
        ] {
            assert_eq!(check_url(local, &p), Err(TargetError::LocalName), "{local}");
        }
        // http is allowed only when asked, and then on port 80.
        let http = TargetPolicy {
            allow_http: true,
            ..strict()
        };
        assert!(check_url("http://shop.example/", &http).is_ok());
        assert_eq!(
            check_url("http://shop.example:443/", &http),
            Err(TargetError::Port(443))
        );
        // Allowed ports and networks.
        let allowed = TargetPolicy {
            allow_ports: vec![8443],
            allow_nets: vec!["127.0.0.2/32".parse().unwrap()],
            ..strict()
        };
        assert!(check_url("https://shop.example:8443/", &allowed).is_ok());
        assert!(check_url("https://127.0.0.2/", &allowed).is_ok());
        assert!(check_url("https://[::ffff:127.0.0.2]/", &allowed).is_ok());
        assert!(check_url("https://127.0.0.1/", &allowed).is_err());
        let any = TargetPolicy {
            allow_any: true,
            allow_http: true,
            ..strict()
        };
        assert!(check_url("http://127.0.0.1:9/h", &any).is_ok());
        assert!(check_url("http://localhost:9/h", &any).is_ok());
    }

    #[test]
    fn a_name_with_any_refused_address_is_refused_whole() {
        let p = strict();
        assert!(check_all(&[ip("8.8.8.8"), ip("2600::1")], &p).is_ok());
        assert_eq!(check_all(&[], &p), Err(TargetError::NoAddress));
        assert!(matches!(
            check_all(&[ip("8.8.8.8"), ip("10.0.0.1")], &p),
            Err(TargetError::Address { .. })
        ));
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_of_loopback() {
        // `localhost` resolves on every machine, to loopback only.
        let r = CheckedResolver::new(Arc::new(strict()), None);
        assert!(matches!(
            r.lookup("localhost").await,
            Err(TargetError::Address { .. } | TargetError::Lookup)
        ));
        let allow = TargetPolicy {
            allow_any: true,
            ..strict()
        };
        let r = CheckedResolver::new(Arc::new(allow), None);
        let addrs = r.lookup("localhost").await.unwrap();
        assert!(addrs.iter().all(IpAddr::is_loopback), "{addrs:?}");
    }
}
