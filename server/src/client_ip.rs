//! Who the client is: its address, and the group its limits are counted under.
//!
//! * [`ClientGroup`]: the unit every per-client limit counts (rate limits,
//!   quotas, connection caps, event-stream caps): an IPv4 address (/32), or an
//!   IPv6 address's /64 (one subscriber is usually given a whole /64, so
//!   counting whole IPv6 addresses would give one client 2^64 buckets). An
//!   IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as its IPv4 address.
//! * [`ClientAddr`]: which address a request comes from. The TCP peer, unless
//!   the peer is one of the operator's [`TrustedProxies`]; then the forwarding
//!   header the operator named ([`ForwardedHeader`]) is read **right to left**,
//!   skipping the addresses of trusted proxies: the first untrusted address is
//!   the client. An entry that is not an address (`unknown`, an obfuscated
//!   `_name`, garbage) stops the walk at the last trusted hop, so such a request
//!   counts against that proxy, never against an address a stranger chose.
//!
//! A forged header from a peer that is not a trusted proxy is never read, and
//! entries a stranger writes to the left of its own address (as appended by a
//! trusted proxy) are never reached.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// The most forwarding entries read from the right of a request's header; a
/// chain of trusted proxies longer than this counts as its last trusted hop.
pub const MAX_HOPS: usize = 32;

/// The unit per-client limits count: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientGroup {
    /// An IPv4 address (also from an IPv4-mapped IPv6 address).
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address (its /64 network).
    V6(u64),
}

impl ClientGroup {
    /// The group of `ip`.
    #[must_use]
    pub fn of(ip: IpAddr) -> ClientGroup {
        match normalize(ip) {
            IpAddr::V4(v4) => ClientGroup::V4(v4),
            IpAddr::V6(v6) => ClientGroup::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

impl fmt::Display for ClientGroup {
    /// `203.0.113.7` for IPv4; `2001:db8:0:1::/64` for IPv6 (the four upper
    /// groups in lowercase hex without leading zeros, then `::/64`): the key
    /// the stores have always used, so buckets survive an upgrade.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientGroup::V4(v4) => write!(f, "{v4}"),
            ClientGroup::V6(p) => write!(
                f,
                "{:x}:{:x}:{:x}:{:x}::/64",
                p >> 48,
                (p >> 32) & 0xffff,
                (p >> 16) & 0xffff,
                p & 0xffff
            ),
        }
    }
}

/// `ip`, with an IPv4-mapped IPv6 address turned into its IPv4 address.
#[must_use]
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A `--trusted-proxies` entry that is neither a CIDR (`10.0.0.0/8`,
/// `2001:db8::/32`) nor a bare address (`10.1.2.3`, meaning /32 or /128).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadNetwork(pub String);

impl fmt::Display for BadNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a network: write a CIDR such as 10.0.0.0/8 or an address",
            self.0
        )
    }
}

impl std::error::Error for BadNetwork {}

/// Parses one trusted network: a CIDR (`10.0.0.0/8`, `fd00::/8`) or a bare
/// address (its /32 or /128). Host bits set below the prefix are ignored
/// (`10.1.2.3/8` is `10.0.0.0/8`). Usable as a clap `value_parser`.
///
/// # Errors
/// [`BadNetwork`] when the text is neither.
pub fn parse_network(text: &str) -> Result<IpNet, BadNetwork> {
    let t = text.trim();
    if let Ok(net) = IpNet::from_str(t) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(t)
        .map(|ip| IpNet::from(normalize(ip)))
        .map_err(|_| BadNetwork(text.to_owned()))
}

/// The proxies whose forwarding headers are believed (none by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// These networks.
    #[must_use]
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies { nets }
    }

    /// Whether none is trusted (forwarding headers are never read).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counted as IPv4) is a trusted proxy.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

impl FromStr for TrustedProxies {
    type Err = BadNetwork;

    /// A comma-separated list of [`parse_network`] entries; empty entries are
    /// skipped (`""` trusts nobody).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|e| !e.trim().is_empty())
            .map(parse_network)
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies::new)
    }
}

/// Which header a trusted proxy writes the client's address into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// A comma-separated list of addresses, each proxy appending the address
    /// it was connected from (`X-Forwarded-For`; also single-address headers
    /// such as `X-Real-IP`). Entries may carry a port (`1.2.3.4:80`,
    /// `[2001:db8::1]:443`).
    List(HeaderName),
    /// RFC 7239 `Forwarded`: elements separated by `,`, each with a `for=`
    /// parameter (`for=192.0.2.60`, `for="[2001:db8::17]:4711"`); `unknown`
    /// and obfuscated identifiers (`_hidden`) are not addresses.
    Forwarded,
}

impl Default for ForwardedHeader {
    /// `X-Forwarded-For`.
    fn default() -> Self {
        ForwardedHeader::List(HeaderName::from_static("x-forwarded-for"))
    }
}

impl FromStr for ForwardedHeader {
    type Err = String;

    /// `Forwarded` (any case) is RFC 7239; any other header name is read as
    /// an address list.
    ///
    /// # Errors
    /// The text is not a header name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = HeaderName::from_str(s.trim()).map_err(|_| format!("not a header name: {s}"))?;
        if name == axum::http::header::FORWARDED {
            Ok(ForwardedHeader::Forwarded)
        } else {
            Ok(ForwardedHeader::List(name))
        }
    }
}

/// [`ForwardedHeader::from_str`], as a clap `value_parser`.
///
/// # Errors
/// The text is not a header name.
pub fn parse_forwarded_header(text: &str) -> Result<ForwardedHeader, String> {
    text.parse()
}

/// How the client's address is found: the trusted proxies and their header.
#[derive(Clone, Debug, Default)]
pub struct ClientAddr {
    trusted: TrustedProxies,
    header: ForwardedHeader,
}

/// One forwarding entry: an address, or something that is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    Addr(IpAddr),
    Opaque,
}

impl ClientAddr {
    /// Reads `header` from peers in `trusted`; with `trusted` empty, the
    /// client is always the TCP peer.
    #[must_use]
    pub fn new(trusted: TrustedProxies, header: ForwardedHeader) -> Self {
        ClientAddr { trusted, header }
    }

    /// The trusted proxies.
    #[must_use]
    pub fn trusted(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// The client's address for a request from `peer` with `headers` (see the
    /// module docs for the walk). Never fails: whatever the headers hold, the
    /// answer is the peer or an address a trusted proxy wrote.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut current = normalize(peer);
        if !self.trusted.contains(current) {
            return current;
        }
        let hops = match &self.header {
            ForwardedHeader::List(name) => list_hops(headers, name),
            ForwardedHeader::Forwarded => forwarded_hops(headers),
        };
        for hop in hops.into_iter().rev().take(MAX_HOPS) {
            match hop {
                Hop::Addr(ip) => {
                    current = normalize(ip);
                    if !self.trusted.contains(current) {
                        return current;
                    }
                }
                Hop::Opaque => return current,
            }
        }
        current
    }

    /// The group of [`ClientAddr::client`].
    #[must_use]
    pub fn group(&self, peer: IpAddr, headers: &HeaderMap) -> ClientGroup {
        ClientGroup::of(self.client(peer, headers))
    }
}

/// Every entry of every `name` line, in order (later lines are further right).
/// A line that is not visible ASCII is one opaque entry.
fn list_hops(headers: &HeaderMap, name: &HeaderName) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in headers.get_all(name) {
        match line.to_str() {
            Ok(text) => hops.extend(text.split(',').map(|e| list_entry(e.trim()))),
            Err(_) => hops.push(Hop::Opaque),
        }
    }
    hops
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn list_entry(e: &str) -> Hop {
    if let Ok(ip) = IpAddr::from_str(e) {
        return Hop::Addr(ip);
    }
    if let Ok(sa) = SocketAddr::from_str(e) {
        return Hop::Addr(sa.ip());
    }
    e.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|v6| Ipv6Addr::from_str(v6).ok())
        .map_or(Hop::Opaque, |v6| Hop::Addr(IpAddr::V6(v6)))
}

/// Splits `text` at `sep` outside double quotes (a backslash inside quotes
/// escapes the next character).
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The `for=` of each element of every `Forwarded` line, in order.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for line in headers.get_all(axum::http::header::FORWARDED) {
        let Ok(text) = line.to_str() else {
            hops.push(Hop::Opaque);
            continue;
        };
        for element in split_unquoted(text, ',') {
            let value = split_unquoted(element, ';').into_iter().find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
            });
            hops.push(value.map_or(Hop::Opaque, forwarded_node));
        }
    }
    hops
}

/// An RFC 7239 node: `192.0.2.43`, `192.0.2.43:47011`, `"[2001:db8::17]"`,
/// `"[2001:db8::17]:4711"`; `unknown`, `_obfuscated` and anything else are
/// opaque.
fn forwarded_node(value: &str) -> Hop {
    let v = match value.strip_prefix('"') {
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains(['"', '\\']) => inner,
            _ => return Hop::Opaque,
        },
        None => value,
    };
    if let Some(rest) = v.strip_prefix('[') {
        let Some((addr, tail)) = rest.split_once(']') else {
            return Hop::Opaque;
        };
        let port_ok = tail.is_empty() || tail.strip_prefix(':').is_some_and(node_port);
        return match Ipv6Addr::from_str(addr) {
            Ok(v6) if port_ok => Hop::Addr(IpAddr::V6(v6)),
            _ => Hop::Opaque,
        };
    }
    let (addr, port_ok) = match v.split_once(':') {
        Some((a, p)) if !p.contains(':') => (a, node_port(p)),
        // No port; or unbracketed IPv6, not RFC 7239, but a proxy may write it.
        _ => (v, true),
    };
    match IpAddr::from_str(addr) {
        Ok(ip) if port_ok => Hop::Addr(ip),
        _ => Hop::Opaque,
    }
}

/// A node port: digits, or an obfuscated `_name`.
fn node_port(p: &str) -> bool {
    (!p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
        || (p.len() > 1
            && p.starts_with('_')
            && p[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(lines: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append(
                HeaderName::from_str(name).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        h
    }

    fn xff(trusted: &str) -> ClientAddr {
        ClientAddr::new(trusted.parse().unwrap(), ForwardedHeader::default())
    }

    fn fwd(trusted: &str) -> ClientAddr {
        ClientAddr::new(trusted.parse().unwrap(), ForwardedHeader::Forwarded)
    }

    #[test]
    fn groups_v4_by_address_and_v6_by_64() {
        let low = ClientGroup::of(ip("2001:db8:1:2:aaaa::1"));
        let high = ClientGroup::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let next = ClientGroup::of(ip("2001:db8:1:3::1"));
        assert_eq!(low, high);
        assert_ne!(low, next);
        assert_eq!(low.to_string(), "2001:db8:1:2::/64");
        assert_eq!(next.to_string(), "2001:db8:1:3::/64");
        assert_eq!(ClientGroup::of(ip("::1")).to_string(), "0:0:0:0::/64");
        assert_eq!(
            ClientGroup::of(ip("fe80:0:0:abcd:1:2:3:4")).to_string(),
            "fe80:0:0:abcd::/64"
        );
        // IPv4 by the whole address; a mapped address is the same client.
        assert_eq!(
            ClientGroup::of(ip("203.0.113.7")).to_string(),
            "203.0.113.7"
        );
        assert_ne!(
            ClientGroup::of(ip("203.0.113.7")),
            ClientGroup::of(ip("203.0.113.8"))
        );
        assert_eq!(
            ClientGroup::of(ip("::ffff:203.0.113.7")),
            ClientGroup::V4(Ipv4Addr::new(203, 0, 113, 7))
        );
        // The same key text the old client_key produced.
        let v6 = ip("2a02:1810:4d02:a600:1c2b:3d4e:5f60:7181");
        let IpAddr::V6(v) = v6 else { unreachable!() };
        let s = v.segments();
        assert_eq!(
            ClientGroup::of(v6).to_string(),
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        );
    }

    #[test]
    fn parses_trusted_networks() {
        let t: TrustedProxies = "10.0.0.0/8, 192.168.1.5 ,fd00::/8,::1,".parse().unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("::ffff:10.1.1.1")));
        assert!(t.contains(ip("192.168.1.5")));
        assert!(!t.contains(ip("192.168.1.6")));
        assert!(t.contains(ip("fd12::9")));
        assert!(t.contains(ip("::1")));
        assert!(!t.contains(ip("::2")));
        assert!(!t.contains(ip("11.0.0.1")));
        // Host bits are dropped rather than refused.
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap(),
            parse_network("10.0.0.0/8").unwrap()
        );
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "example.com",
            "10.0.0.1-10.0.0.9",
            "::/129",
            "*",
        ] {
            let e = bad.parse::<TrustedProxies>().unwrap_err();
            assert!(e.to_string().contains("not a network"), "{bad}: {e}");
        }
    }

    #[test]
    fn untrusted_peers_are_themselves_whatever_they_send() {
        let c = xff("127.0.0.1/32");
        for h in [
            headers(&[("x-forwarded-for", b"198.51.100.7")]),
            headers(&[("x-forwarded-for", b"198.51.100.7, 10.0.0.1")]),
            headers(&[("forwarded", b"for=198.51.100.7")]),
            headers(&[("x-real-ip", b"198.51.100.7")]),
            HeaderMap::new(),
        ] {
            assert_eq!(c.client(ip("127.0.0.2"), &h), ip("127.0.0.2"));
        }
        // No trusted proxy at all: nobody's header is read.
        let none = ClientAddr::default();
        let h = headers(&[("x-forwarded-for", b"198.51.100.7")]);
        assert_eq!(none.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // A mapped peer is its IPv4 address.
        assert_eq!(none.client(ip("::ffff:127.0.0.9"), &h), ip("127.0.0.9"));
    }

    #[test]
    fn x_forwarded_for_is_read_right_to_left_past_trusted_hops() {
        let c = xff("127.0.0.1/32, 10.0.0.0/8");
        let peer = ip("127.0.0.1");
        let cases: &[(&[&[u8]], &str)] = &[
            (&[b"203.0.113.9"], "203.0.113.9"),
            // The stranger's own forged entries sit left of its real address.
            (&[b"1.1.1.1, 2.2.2.2, 203.0.113.9"], "203.0.113.9"),
            (&[b"1.1.1.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),
            (&[b"1.1.1.1,203.0.113.9,10.0.0.7,10.0.0.8"], "203.0.113.9"),
            // Several lines: later lines are further right.
            (&[b"1.1.1.1", b"203.0.113.9, 10.0.0.7"], "203.0.113.9"),
            (&[b"203.0.113.9", b"10.0.0.7"], "203.0.113.9"),
            // Ports and brackets.
            (&[b"203.0.113.9:5555"], "203.0.113.9"),
            (&[b"[2001:db8::9]:443"], "2001:db8::9"),
            (&[b"[2001:db8::9]"], "2001:db8::9"),
            (&[b" 2001:db8::9 "], "2001:db8::9"),
            (&[b"::ffff:203.0.113.9"], "203.0.113.9"),
            // Every hop trusted: the leftmost.
            (&[b"10.0.0.1, 10.0.0.2"], "10.0.0.1"),
            // Not an address where a trusted proxy wrote: the last trusted hop.
            (&[b"unknown"], "127.0.0.1"),
            (&[b"203.0.113.9, garbage, 10.0.0.7"], "10.0.0.7"),
            (&[b"203.0.113.9, , 10.0.0.7"], "10.0.0.7"),
            (&[b""], "127.0.0.1"),
            (&[b"203.0.113.9:99999"], "127.0.0.1"),
            (&[b"[203.0.113.9]"], "127.0.0.1"),
            (&[b"203.0.113.9 198.51.100.1"], "127.0.0.1"),
            (&[b"203.0.113.9, \xff\xfe"], "127.0.0.1"),
            // ... but garbage left of the client does not matter.
            (&[b"\"><script>, 203.0.113.9"], "203.0.113.9"),
            (&[b"\xff\xfe", b"203.0.113.9"], "203.0.113.9"),
        ];
        for (lines, want) in cases {
            let h = headers(
                &lines
                    .iter()
                    .map(|l| ("x-forwarded-for", *l))
                    .collect::<Vec<_>>(),
            );
            assert_eq!(c.client(peer, &h), ip(want), "{lines:?}");
        }
        // No header from a trusted peer: the peer.
        assert_eq!(c.client(peer, &HeaderMap::new()), peer);
        // A Forwarded header is not read when X-Forwarded-For is the one named.
        let h = headers(&[("forwarded", b"for=203.0.113.9")]);
        assert_eq!(c.client(peer, &h), peer);
    }

    #[test]
    fn a_long_trusted_chain_stops_at_max_hops() {
        let c = xff("10.0.0.0/8");
        let mut chain = vec!["203.0.113.9".to_owned()];
        chain.extend((0..MAX_HOPS + 5).map(|i| format!("10.0.{}.{}", i / 200, i % 200 + 1)));
        let h = headers(&[("x-forwarded-for", chain.join(",").as_bytes())]);
        let got = c.client(ip("10.9.9.9"), &h);
        assert!(c.trusted().contains(got), "{got}");
        // Within the limit, the client is found.
        let short = chain[..MAX_HOPS].join(",");
        let h = headers(&[("x-forwarded-for", short.as_bytes())]);
        assert_eq!(c.client(ip("10.9.9.9"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn another_list_header_by_name() {
        let c = ClientAddr::new("127.0.0.1".parse().unwrap(), "X-Real-IP".parse().unwrap());
        let h = headers(&[
            ("x-real-ip", b"203.0.113.9"),
            ("x-forwarded-for", b"1.1.1.1"),
        ]);
        assert_eq!(c.client(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        assert!("bad header\n".parse::<ForwardedHeader>().is_err());
        assert_eq!(
            "FORWARDED".parse::<ForwardedHeader>().unwrap(),
            ForwardedHeader::Forwarded
        );
    }

    #[test]
    fn rfc_7239_forwarded() {
        let c = fwd("127.0.0.1, 10.0.0.0/8");
        let peer = ip("127.0.0.1");
        let cases: &[(&[&[u8]], &str)] = &[
            (&[b"for=203.0.113.9"], "203.0.113.9"),
            (&[b"For=203.0.113.9"], "203.0.113.9"),
            (&[b"for=203.0.113.9;proto=https;by=10.0.0.1"], "203.0.113.9"),
            (&[b"proto=https; for=203.0.113.9 ;host=a"], "203.0.113.9"),
            (&[b"for=\"203.0.113.9:4711\""], "203.0.113.9"),
            (&[b"for=203.0.113.9:4711"], "203.0.113.9"),
            (&[b"for=\"[2001:db8:cafe::17]\""], "2001:db8:cafe::17"),
            (&[b"for=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
            (&[b"for=\"[2001:db8:cafe::17]:_port\""], "2001:db8:cafe::17"),
            // Right to left past trusted hops, across elements and lines.
            (
                &[b"for=1.1.1.1, for=203.0.113.9, for=10.0.0.7"],
                "203.0.113.9",
            ),
            (
                &[b"for=1.1.1.1", b"for=203.0.113.9", b"for=10.0.0.7"],
                "203.0.113.9",
            ),
            // Quoted commas and semicolons do not split.
            (
                &[b"for=1.1.1.1;host=\"a,b;c\", for=203.0.113.9"],
                "203.0.113.9",
            ),
            // Obfuscated, unknown, missing or malformed: the last trusted hop.
            (&[b"for=_hidden"], "127.0.0.1"),
            (&[b"for=unknown"], "127.0.0.1"),
            (&[b"for=203.0.113.9, for=_hidden, for=10.0.0.7"], "10.0.0.7"),
            (&[b"proto=https"], "127.0.0.1"),
            (&[b"for=\"[2001:db8::17\""], "127.0.0.1"),
            (&[b"for=\"203.0.113.9"], "127.0.0.1"),
            (&[b"for=\"[2001:db8::17]:99x\""], "127.0.0.1"),
            (&[b"for=\"2\\03.0.113.9\""], "127.0.0.1"),
            (&[b"for=203.0.113.9:"], "127.0.0.1"),
            (&[b"for="], "127.0.0.1"),
            (&[b"\xff"], "127.0.0.1"),
            (&[b""], "127.0.0.1"),
            // Forged entries left of the client never count.
            (&[b"for=_x, for=\"[::1\", for=203.0.113.9"], "203.0.113.9"),
        ];
        for (lines, want) in cases {
            let h = headers(&lines.iter().map(|l| ("forwarded", *l)).collect::<Vec<_>>());
            assert_eq!(c.client(peer, &h), ip(want), "{lines:?}");
        }
        // X-Forwarded-For is not read when Forwarded is the one named.
        let h = headers(&[("x-forwarded-for", b"203.0.113.9")]);
        assert_eq!(c.client(peer, &h), peer);
    }

    #[test]
    fn splits_outside_quotes_only() {
        assert_eq!(split_unquoted("a,b", ','), ["a", "b"]);
        assert_eq!(split_unquoted("a=\"x,y\",b", ','), ["a=\"x,y\"", "b"]);
        assert_eq!(
            split_unquoted("a=\"x\\\",y\",b", ','),
            ["a=\"x\\\",y\"", "b"]
        );
        assert_eq!(split_unquoted("", ','), [""]);
    }
}
