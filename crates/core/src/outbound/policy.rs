//! Which destinations outbound requests may reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Refuses special-purpose addresses unless an allowed network contains them.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    allowed: Vec<IpNet>,
}

/// A refused destination, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is {kind}")]
pub struct BlockedDestination {
    /// The refused address.
    pub ip: IpAddr,
    /// What kind of address it is, e.g. `a loopback address`.
    pub kind: &'static str,
}

impl DestinationPolicy {
    /// A policy that also allows the special addresses inside `allowed`.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Whether requests may go to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockedDestination> {
        let Some(kind) = classify(ip) else {
            return Ok(());
        };
        let plain = canonical(ip);
        if self
            .allowed
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&plain))
        {
            return Ok(());
        }
        Err(BlockedDestination { ip: plain, kind })
    }
}

impl fmt::Display for DestinationPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allowed networks: {:?}", self.allowed)
    }
}

/// An IPv4-mapped or -compatible IPv6 address as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                // Deprecated IPv4-compatible form ::a.b.c.d (but not :: and ::1).
                if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
                    IpAddr::V4(Ipv4Addr::new(
                        (s[6] >> 8) as u8,
                        s[6] as u8,
                        (s[7] >> 8) as u8,
                        s[7] as u8,
                    ))
                } else {
                    ip
                }
            }
        },
        IpAddr::V4(_) => ip,
    }
}

/// What kind of special-purpose address `ip` is, or `None` for an ordinary public address.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (127, _, _) => "a loopback address",
        (0, _, _) => "an unspecified address",
        (10, _, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (192, 168, _) => "a private address",
        (169, 254, _) => "a link-local address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (192, 88, 99) => "a 6to4 relay anycast address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

/// IPv6 ranges of IANA's special-purpose registry that are not globally reachable. The
/// globally reachable assignments inside `2001::/23` (AMT, AS112, DRIP, the PCP and TURN
/// anycast addresses) are ordinary destinations.
fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        // ::ffff:0:a.b.c.d, RFC 2765's IPv4-translated form (the mapped form is already IPv4).
        "an IPv4-translated address"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a private (unique local) address"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] & 0xfff0 == 0x3ff0 {
        "a documentation address"
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        "a NAT64 address"
    } else if s[0] == 0x2002 {
        "a 6to4 address"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "a Teredo address"
    } else if s[0] == 0x2001 && s[1] == 0x0002 && s[2] == 0 {
        "a benchmarking address"
    } else if s[0] == 0x2001 && (s[1] & 0xfff0 == 0x0010 || s[1] & 0xfff0 == 0x0020) {
        "an ORCHID address"
    } else if s[0] == 0x0100 && s[1..3] == [0, 0] && (s[3] == 0 || s[3] == 1) {
        // 100::/64 discards traffic; 100:0:0:1::/64 is the dummy prefix of RFC 9780.
        "a discard-only address"
    } else if s[0] == 0x5f00 {
        "a segment-routing (SRv6) address"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_addresses_are_refused_and_public_ones_allowed() {
        let cases = [
            ("127.0.0.1", false),
            ("127.255.0.9", false),
            ("0.0.0.0", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("198.51.100.1", false),
            ("203.0.113.1", false),
            ("198.18.0.1", false),
            ("224.0.0.1", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            ("::1", false),
            ("::", false),
            ("fc00::1", false),
            ("fd12::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("64:ff9b::a00:1", false),
            ("2002::1", false),
            ("2001::1", false),
            ("100::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("::127.0.0.1", false),
            ("2606:4700::1111", true),
            ("::ffff:0:7f00:1", false),
            ("::ffff:0:808:808", false),
            ("2001:2::1", false),
            ("2001:2:0:ffff::1", false),
            ("2001:3::1", true),
            ("2001:4:112::1", true),
            ("2001:20::1", false),
            ("2001:10::1", false),
            ("3fff::1", false),
            ("100:0:0:1::1", false),
            ("5f00::1", false),
            ("192.88.99.1", false),
        ];
        let policy = DestinationPolicy::default();
        for (ip, allowed) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(policy.check(ip).is_ok(), allowed, "{ip}");
        }
    }

    #[test]
    fn allowed_networks_open_special_ranges_including_mapped_forms() {
        let policy = DestinationPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        for ip in ["127.0.0.1", "::ffff:127.0.0.1"] {
            assert!(policy.check(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        assert!(policy.check("::1".parse().unwrap()).is_err());
        assert!(policy.check("10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn the_reason_names_the_kind_of_address() {
        let err = DestinationPolicy::default()
            .check("::ffff:127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(err.to_string(), "127.0.0.1 is a loopback address");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// An IPv6 address carrying an IPv4 address, in any of its embedded forms, is judged
        /// as that IPv4 address: no form smuggles a private address past the policy.
        #[test]
        fn embedded_ipv4_is_judged_as_ipv4(octets in any::<[u8; 4]>()) {
            let v4 = Ipv4Addr::from(octets);
            let policy = DestinationPolicy::default();
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(policy.check(mapped).is_ok(), policy.check(IpAddr::V4(v4)).is_ok());
            let [a, b, c, d] = octets;
            let translated = Ipv6Addr::new(
                0, 0, 0, 0, 0xffff, 0,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
            );
            prop_assert!(policy.check(IpAddr::V6(translated)).is_err());
        }

        /// The classifier is total, and an allowed network opens exactly what it contains.
        #[test]
        fn an_allowed_network_opens_only_itself(raw in any::<u128>(), len in 96u8..=128) {
            let ip = IpAddr::V6(Ipv6Addr::from(raw));
            let _ = classify(ip);
            let net = IpNet::new(ip, len).expect("prefix within 128").trunc();
            let policy = DestinationPolicy::new(vec![net]);
            prop_assert!(policy.check(ip).is_ok());
        }

        /// Every address in a blocked IPv4 range is blocked, whatever its host bits.
        #[test]
        fn private_ranges_are_blocked_whole(host in any::<u32>()) {
            let policy = DestinationPolicy::default();
            for (base, len) in [(0x0a00_0000u32, 8u32), (0xac10_0000, 12), (0xc0a8_0000, 16),
                                (0x7f00_0000, 8), (0xa9fe_0000, 16), (0x6440_0000, 10)] {
                let ip = Ipv4Addr::from(base | (host >> len));
                prop_assert!(policy.check(IpAddr::V4(ip)).is_err(), "{}", ip);
            }
        }
    }
}
