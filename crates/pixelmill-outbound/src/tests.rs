//! The classifier and the guard, range by range: the first and last address of every refused
//! range, the addresses on the other side of each edge, and the IPv6 forms that carry IPv4.

use super::*;
use ipnet::IpNet;
use std::net::{Ipv4Addr, Ipv6Addr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn name_of(addr: &str) -> Option<&'static str> {
    classify(ip(addr)).map(|r| r.range.name)
}

fn step(addr: IpAddr, up: bool) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) => {
            let n = u32::from(a);
            let next = if up {
                n.checked_add(1)
            } else {
                n.checked_sub(1)
            };
            next.map(|n| IpAddr::V4(Ipv4Addr::from(n)))
        }
        IpAddr::V6(a) => {
            let n = u128::from(a);
            let next = if up {
                n.checked_add(1)
            } else {
                n.checked_sub(1)
            };
            next.map(|n| IpAddr::V6(Ipv6Addr::from(n)))
        }
    }
}

/// The addresses the tables refuse directly, before any IPv4-in-IPv6 form is considered.
fn in_a_table(addr: IpAddr) -> bool {
    ranges().any(|r| r.net.contains(&addr))
}

#[test]
fn both_ends_of_every_range_are_refused_and_its_neighbours_only_when_another_range_holds_them() {
    for range in ranges() {
        let (first, last) = (range.net.network(), range.net.broadcast());
        for edge in [first, last] {
            assert!(
                classify(edge).is_some(),
                "{edge} ({}) is allowed",
                range.name
            );
        }
        for outside in [step(first, false), step(last, true)].into_iter().flatten() {
            let IpAddr::V6(v6) = outside else {
                assert_eq!(
                    classify(outside).is_some(),
                    in_a_table(outside),
                    "{outside}, next to {}",
                    range.net
                );
                continue;
            };
            if embedded_v4(v6).is_empty() {
                assert_eq!(
                    classify(outside).is_some(),
                    in_a_table(outside),
                    "{outside}, next to {}",
                    range.net
                );
            }
        }
    }
}

#[test]
fn each_ipv4_range_is_named_at_both_edges_and_public_neighbours_pass() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (last address before, first, last, first address after)
        ("", "0.0.0.0", "0.255.255.255", "1.0.0.0"),
        ("9.255.255.255", "10.0.0.0", "10.255.255.255", "11.0.0.0"),
        (
            "100.63.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "100.128.0.0",
        ),
        (
            "126.255.255.255",
            "127.0.0.0",
            "127.255.255.255",
            "128.0.0.0",
        ),
        (
            "169.253.255.255",
            "169.254.0.0",
            "169.254.255.255",
            "169.255.0.0",
        ),
        (
            "172.15.255.255",
            "172.16.0.0",
            "172.31.255.255",
            "172.32.0.0",
        ),
        ("191.255.255.255", "192.0.0.0", "192.0.0.255", "192.0.1.0"),
        ("192.0.1.255", "192.0.2.0", "192.0.2.255", "192.0.3.0"),
        (
            "192.88.98.255",
            "192.88.99.0",
            "192.88.99.255",
            "192.88.100.0",
        ),
        (
            "192.167.255.255",
            "192.168.0.0",
            "192.168.255.255",
            "192.169.0.0",
        ),
        (
            "198.17.255.255",
            "198.18.0.0",
            "198.19.255.255",
            "198.20.0.0",
        ),
        (
            "198.51.99.255",
            "198.51.100.0",
            "198.51.100.255",
            "198.51.101.0",
        ),
        (
            "203.0.112.255",
            "203.0.113.0",
            "203.0.113.255",
            "203.0.114.0",
        ),
        ("223.255.255.255", "224.0.0.0", "239.255.255.255", ""),
    ];
    for &(before, first, last, after) in cases {
        let name = name_of(first).unwrap_or_else(|| panic!("{first} is allowed"));
        assert_eq!(name_of(last), Some(name), "{last}");
        for public in [before, after].into_iter().filter(|s| !s.is_empty()) {
            assert_eq!(name_of(public), None, "{public} is public");
        }
    }
    assert_eq!(
        name_of("255.255.255.255"),
        Some("limited broadcast (RFC 919)")
    );
    assert_eq!(name_of("240.0.0.0"), Some("reserved (RFC 1112)"));
    assert_eq!(name_of("255.255.255.254"), Some("reserved (RFC 1112)"));
    assert!(name_of("169.254.169.254").unwrap().contains("metadata"));
    assert!(name_of("100.64.0.1").unwrap().contains("carrier-grade NAT"));
}

#[test]
fn each_ipv6_range_is_named_at_both_edges_and_public_neighbours_pass() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("", "::", "::", ""),
        ("", "::1", "::1", ""),
        ("", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""),
        ("", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""),
        ("", "fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""),
        ("", "ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""),
        (
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db9::",
        ),
        (
            "2001:1:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:2::",
            "2001:2:0:ffff:ffff:ffff:ffff:ffff",
            "2001:2:1::",
        ),
        (
            "2001:f:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:10::",
            "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff",
            "",
        ),
        (
            "",
            "2001:20::",
            "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:30::",
        ),
        (
            "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff::",
            "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
            "3fff:1000::",
        ),
        ("", "5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""),
        ("", "100::", "100::ffff:ffff:ffff:ffff", ""),
        ("", "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", ""),
        (
            "",
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2000::",
        ),
        (
            "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "4000::",
            "4000::",
            "",
        ),
    ];
    for &(before, first, last, after) in cases {
        let name = name_of(first).unwrap_or_else(|| panic!("{first} is allowed"));
        assert_eq!(name_of(last), Some(name), "{last}");
        for public in [before, after].into_iter().filter(|s| !s.is_empty()) {
            assert_eq!(name_of(public), None, "{public} is public");
        }
    }
    // Next to the SRv6 block and discard-only: still outside 2000::/3, refused as such.
    assert_eq!(name_of("5f01::"), Some(ranges::OUTSIDE_GLOBAL_NAME));
    assert_eq!(name_of("100::1:0:0:0:0"), Some(ranges::OUTSIDE_GLOBAL_NAME));
    for public in [
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450::1",
    ] {
        assert_eq!(name_of(public), None, "{public}");
    }
}

#[test]
fn ipv6_forms_that_carry_ipv4_are_judged_by_the_ipv4_inside() {
    let refused: &[(&str, &str, &str)] = &[
        ("::ffff:127.0.0.1", "IPv4-mapped", "loopback (RFC 1122)"),
        ("::ffff:10.0.0.5", "IPv4-mapped", "private (RFC 1918)"),
        (
            "::ffff:169.254.169.254",
            "IPv4-mapped",
            "link-local, where cloud metadata services answer (RFC 3927)",
        ),
        (
            "::ffff:0.0.0.0",
            "IPv4-mapped",
            "unspecified, \"this network\" (RFC 1122)",
        ),
        ("::127.0.0.1", "IPv4-compatible", "loopback (RFC 1122)"),
        ("::192.168.1.1", "IPv4-compatible", "private (RFC 1918)"),
        ("64:ff9b::10.0.0.5", "NAT64", "private (RFC 1918)"),
        (
            "64:ff9b::a9fe:a9fe",
            "NAT64",
            "link-local, where cloud metadata services answer (RFC 3927)",
        ),
        ("2002:7f00:1::", "6to4", "loopback (RFC 1122)"),
        ("2002:a00:5::1", "6to4", "private (RFC 1918)"),
        (
            "2001:0:4136:e378:8000:63bf:f5ff:fffa",
            "Teredo client",
            "private (RFC 1918)",
        ),
        ("2001:0:a00:5::1", "Teredo server", "private (RFC 1918)"),
    ];
    for &(addr, form, range) in refused {
        let refusal = classify(ip(addr)).unwrap_or_else(|| panic!("{addr} is allowed"));
        assert_eq!(refusal.range.name, range, "{addr}");
        assert_eq!(refusal.embedded.map(|e| e.form), Some(form), "{addr}");
    }
    for public in [
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:0:808:808:0:0:f7f7:f7f7",
    ] {
        assert_eq!(
            classify(ip(public)),
            None,
            "{public} carries a public address"
        );
    }
    // `::` and `::1` are IPv6's own, not IPv4-compatible 0.0.0.0 and 0.0.0.1.
    assert_eq!(classify(ip("::1")).unwrap().embedded, None);
    assert_eq!(
        name_of("::2"),
        Some("unspecified, \"this network\" (RFC 1122)")
    );
}

#[test]
fn an_allowed_net_wins_over_the_refusal_and_only_inside_it() {
    let guard = Guard::new(parse_allow_nets("127.0.0.2/32, fd00::/8").unwrap());
    assert_eq!(guard.check(ip("127.0.0.2")), Ok(()));
    assert_eq!(
        guard.check(ip("::ffff:127.0.0.2")),
        Ok(()),
        "its mapped form too"
    );
    assert_eq!(guard.check(ip("fd00::1")), Ok(()));
    for refused in [
        "127.0.0.1",
        "127.0.0.3",
        "::1",
        "fe80::1",
        "fc00::1",
        "10.0.0.5",
    ] {
        assert!(guard.check(ip(refused)).is_err(), "{refused}");
    }
    assert!(!guard.allows_loopback(), "one loopback /32 is not loopback");
    assert!(Guard::new(parse_allow_nets("127.0.0.0/8").unwrap()).allows_loopback());
    assert_eq!(Guard::default().check(ip("93.184.215.14")), Ok(()));
}

#[test]
fn a_refusal_names_the_address_the_range_and_the_setting_that_allows_it() {
    let err = Guard::default().check(ip("169.254.169.254")).unwrap_err();
    let text = err.to_string();
    for part in [
        "169.254.169.254",
        "169.254.0.0/16",
        "link-local",
        "PIXELMILL_WEBHOOK_ALLOW_NETS=169.254.0.0/16",
    ] {
        assert!(text.contains(part), "{part} missing in: {text}");
    }
    let text = Guard::default()
        .check(ip("::ffff:10.0.0.5"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("IPv4-mapped form of 10.0.0.5") && text.contains("10.0.0.0/8"),
        "{text}"
    );
}

#[test]
fn allow_nets_parse_cidrs_and_bare_addresses_and_reject_anything_else_with_an_example() {
    let nets = parse_allow_nets(" 127.0.0.0/8 ,::1, 10.1.2.3").unwrap();
    let expect: Vec<IpNet> = ["127.0.0.0/8", "::1/128", "10.1.2.3/32"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nets, expect);
    assert_eq!(parse_allow_nets("").unwrap(), Vec::<IpNet>::new());
    let err = parse_allow_nets("127.0.0.0/8,localnet").unwrap_err();
    assert!(
        err.contains("\"localnet\"") && err.contains("e.g. 127.0.0.0/8"),
        "{err}"
    );
}
