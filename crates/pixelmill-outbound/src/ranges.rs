//! The address ranges outbound requests may not reach, and the classifier: pure, no I/O.
//!
//! The tables follow the IANA special-purpose address registries. IPv6 forms that carry an IPv4
//! address (mapped, compatible, NAT64, 6to4, Teredo) are judged by the IPv4 address inside, since
//! that is where the packets end up.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range outbound requests may not reach: its block and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub net: IpNet,
    pub name: &'static str,
}

/// How an IPv6 address carries the IPv4 address that decided its refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    pub form: &'static str,
    pub v4: Ipv4Addr,
}

/// Why an address is refused: the range it (or the IPv4 address inside it) falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub range: Range,
    pub embedded: Option<Embedded>,
}

const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    len: u8,
    name: &'static str,
) -> (Ipv4Addr, u8, &'static str) {
    (Ipv4Addr::new(a, b, c, d), len, name)
}

/// First match wins, so a block inside another comes first.
const V4: &[(Ipv4Addr, u8, &str)] = &[
    v4(0, 0, 0, 0, 8, "unspecified, \"this network\" (RFC 1122)"),
    v4(10, 0, 0, 0, 8, "private (RFC 1918)"),
    v4(
        100,
        64,
        0,
        0,
        10,
        "shared carrier-grade NAT space (RFC 6598)",
    ),
    v4(127, 0, 0, 0, 8, "loopback (RFC 1122)"),
    v4(
        169,
        254,
        0,
        0,
        16,
        "link-local, where cloud metadata services answer (RFC 3927)",
    ),
    v4(172, 16, 0, 0, 12, "private (RFC 1918)"),
    v4(192, 0, 0, 0, 24, "IETF protocol assignments (RFC 6890)"),
    v4(192, 0, 2, 0, 24, "documentation, TEST-NET-1 (RFC 5737)"),
    v4(
        192,
        88,
        99,
        0,
        24,
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    v4(192, 168, 0, 0, 16, "private (RFC 1918)"),
    v4(198, 18, 0, 0, 15, "benchmarking (RFC 2544)"),
    v4(198, 51, 100, 0, 24, "documentation, TEST-NET-2 (RFC 5737)"),
    v4(203, 0, 113, 0, 24, "documentation, TEST-NET-3 (RFC 5737)"),
    v4(224, 0, 0, 0, 4, "multicast (RFC 5771)"),
    v4(255, 255, 255, 255, 32, "limited broadcast (RFC 919)"),
    v4(240, 0, 0, 0, 4, "reserved (RFC 1112)"),
];

const fn v6(segments: [u16; 8], len: u8, name: &'static str) -> (Ipv6Addr, u8, &'static str) {
    let [a, b, c, d, e, f, g, h] = segments;
    (Ipv6Addr::new(a, b, c, d, e, f, g, h), len, name)
}

/// Checked before the forms that embed IPv4, which `::` and `::1` would otherwise match.
const V6_FIRST: &[(Ipv6Addr, u8, &str)] = &[
    v6([0; 8], 128, "unspecified (RFC 4291)"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback (RFC 4291)"),
];

pub(crate) const OUTSIDE_GLOBAL_NAME: &str = "outside the global unicast space 2000::/3 (RFC 4291)";

/// Checked after the forms that embed IPv4; first match wins.
const V6: &[(Ipv6Addr, u8, &str)] = &[
    v6(
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use NAT64 (RFC 8215)",
    ),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only (RFC 6666)"),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking (RFC 5180)"),
    v6(
        [0x2001, 0x10, 0, 0, 0, 0, 0, 0],
        28,
        "deprecated ORCHID (RFC 4843)",
    ),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2 (RFC 7343)"),
    v6(
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (RFC 3849)",
    ),
    v6(
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation (RFC 9637)",
    ),
    v6(
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing SIDs (RFC 9602)",
    ),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (RFC 4193)"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local (RFC 4291)"),
    v6(
        [0xfec0, 0, 0, 0, 0, 0, 0, 0],
        10,
        "deprecated site-local (RFC 3879)",
    ),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast (RFC 4291)"),
    v6([0; 8], 4, OUTSIDE_GLOBAL_NAME),
    v6([0x1000, 0, 0, 0, 0, 0, 0, 0], 4, OUTSIDE_GLOBAL_NAME),
    v6([0x4000, 0, 0, 0, 0, 0, 0, 0], 2, OUTSIDE_GLOBAL_NAME),
    v6([0x8000, 0, 0, 0, 0, 0, 0, 0], 1, OUTSIDE_GLOBAL_NAME),
];

fn net4(&(addr, len, name): &(Ipv4Addr, u8, &'static str)) -> Range {
    let net = Ipv4Net::new(addr, len).expect("table prefix lengths are at most 32");
    Range {
        net: net.into(),
        name,
    }
}

fn net6(&(addr, len, name): &(Ipv6Addr, u8, &'static str)) -> Range {
    let net = Ipv6Net::new(addr, len).expect("table prefix lengths are at most 128");
    Range {
        net: net.into(),
        name,
    }
}

/// Every refused range, in the order they are checked (IPv4, then IPv6).
pub fn ranges() -> impl Iterator<Item = Range> {
    V4.iter()
        .map(net4)
        .chain(V6_FIRST.iter().chain(V6).map(net6))
}

fn classify_v4(addr: Ipv4Addr) -> Option<Range> {
    V4.iter()
        .map(net4)
        .find(|r| r.net.contains(&IpAddr::V4(addr)))
}

/// The IPv4 addresses an IPv6 address carries, with the form that carries each: the packets of
/// these forms are delivered to (or tunnelled towards) that IPv4 address.
pub fn embedded_v4(addr: Ipv6Addr) -> Vec<Embedded> {
    let s = addr.segments();
    let low32 = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    let found = |form, v4| vec![Embedded { form, v4 }];
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => found("IPv4-mapped", low32),
        // `::` and `::1` are IPv6's own unspecified and loopback, not IPv4 0.0.0.0 and 0.0.0.1.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => Vec::new(),
        [0, 0, 0, 0, 0, 0, ..] => found("IPv4-compatible", low32),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => found("NAT64", low32),
        [0x2002, hi, lo, ..] => found(
            "6to4",
            Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)),
        ),
        // Teredo: the server's address in the clear, the client's (where packets go) inverted.
        [0x2001, 0, hi, lo, ..] => vec![
            Embedded {
                form: "Teredo server",
                v4: Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)),
            },
            Embedded {
                form: "Teredo client",
                v4: !low32,
            },
        ],
        _ => Vec::new(),
    }
}

/// Why `addr` may not be reached, or `None` when it is a public address.
pub fn classify(addr: IpAddr) -> Option<Refusal> {
    let plain = |range| Refusal {
        range,
        embedded: None,
    };
    let v6 = match addr {
        IpAddr::V4(v4) => return classify_v4(v4).map(plain),
        IpAddr::V6(v6) => v6,
    };
    let within = |table: &[(Ipv6Addr, u8, &'static str)]| {
        table.iter().map(net6).find(|r| r.net.contains(&addr))
    };
    if let Some(range) = within(V6_FIRST) {
        return Some(plain(range));
    }
    let embedded = embedded_v4(v6);
    if !embedded.is_empty() {
        // The IPv4 address inside decides; the IPv6 block around it is only its carrier.
        return embedded.into_iter().find_map(|e| {
            classify_v4(e.v4).map(|range| Refusal {
                range,
                embedded: Some(e),
            })
        });
    }
    within(V6).map(plain)
}
