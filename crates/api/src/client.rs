//! Who the client is: the address that rate limits and connection caps count against.
//!
//! The peer address of the TCP connection is the client, unless that peer is a proxy listed in
//! `trusted_proxies`. Only then is `X-Forwarded-For` read, from the right: each hop appends the
//! address it saw, so the rightmost entry that is not itself a trusted proxy is the first address
//! no trusted party vouches for. Anything a client writes to the left of that is ignored, so a
//! client cannot choose the address it is counted under.

use std::net::IpAddr;

use actix_web::dev::ServiceRequest;
use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client address of a request, as the rate limits and the access log see it.
pub fn client_address(req: &HttpRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok());
    resolve(req.peer_addr().map(|a| a.ip()), forwarded, trusted_proxies)
}

/// [`client_address`] for middleware, which sees a `ServiceRequest`.
pub fn service_client_address(req: &ServiceRequest, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    client_address(req.request(), trusted_proxies)
}

/// The client address as text for rate-limit keys: the address, or `unknown` for a request
/// without a peer (only test requests lack one). IPv6 clients are counted per /64, the block
/// one subscriber usually holds, so rotating addresses inside it gains nothing.
pub fn client_subject(address: Option<IpAddr>) -> String {
    match address {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => "unknown".to_owned(),
    }
}

fn resolve<'a>(
    peer: Option<IpAddr>,
    forwarded: impl Iterator<Item = &'a str>,
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return Some(ip),
            // A hop that is not an address cannot be believed, nor anything left of it.
            Err(_) => return Some(peer),
        }
    }
    Some(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_client_address_follows_only_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let cases: [(&str, &str, &[&str], &str); 7] = [
            (
                "an untrusted peer is the client",
                "203.0.113.9",
                &["1.2.3.4"],
                "203.0.113.9",
            ),
            (
                "a trusted peer without the header",
                "10.0.0.1",
                &[],
                "10.0.0.1",
            ),
            (
                "one hop through a trusted proxy",
                "10.0.0.1",
                &["198.51.100.7"],
                "198.51.100.7",
            ),
            (
                "a forged entry left of the real one is ignored",
                "10.0.0.1",
                &["6.6.6.6, 198.51.100.7"],
                "198.51.100.7",
            ),
            (
                "trusted hops are skipped from the right",
                "10.0.0.1",
                &["198.51.100.7, 10.0.0.2"],
                "198.51.100.7",
            ),
            (
                "several header lines read as one list",
                "10.0.0.1",
                &["6.6.6.6", "198.51.100.8"],
                "198.51.100.8",
            ),
            (
                "garbage stops at the peer",
                "10.0.0.1",
                &["198.51.100.7, nonsense"],
                "10.0.0.1",
            ),
        ];
        for (what, peer, header, expected) in cases {
            let got = resolve(Some(ip(peer)), header.iter().copied(), &trusted);
            assert_eq!(got, Some(ip(expected)), "{what}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_header_is_never_read() {
        let got = resolve(Some(ip("127.0.0.1")), ["1.2.3.4"].into_iter(), &[]);
        assert_eq!(got, Some(ip("127.0.0.1")));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_subject(Some(ip("2001:db8:1:2:3:4:5:6"))),
            "2001:db8:1:2::/64"
        );
        assert_eq!(client_subject(Some(ip("::ffff:192.0.2.1"))), "192.0.2.1");
        assert_eq!(client_subject(Some(ip("192.0.2.1"))), "192.0.2.1");
        assert_eq!(client_subject(None), "unknown");
    }
}
