//! The client's IP address as Perch sees it: the socket peer, or, when the
//! peer is a proxy the operator trusts (`PERCH_TRUSTED_PROXIES`), the
//! address that proxy reports in `X-Forwarded-For`, hop by hop from the
//! right. Rate limits count by it and the audit trail records it.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request, put in the request's extensions by
/// the server before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `PERCH_TRUSTED_PROXIES` entry that is not a CIDR or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR: {0:?}")]
pub struct BadProxyEntry(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxyEntry;

    /// Comma-separated CIDRs or plain addresses (`10.0.0.0/8, ::1`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| BadProxyEntry(entry.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TrustedProxies {
    /// Whether no proxy is trusted (the socket peer is always the client).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client of a request that came from `peer` with `headers`.
    ///
    /// Each trusted hop vouches for the address to its left in
    /// `X-Forwarded-For` (all such headers, in order, as one list); the
    /// first address that is not a trusted proxy is the client. An entry a
    /// trusted proxy added that does not parse stops the walk at that
    /// proxy: nothing further left can be believed.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if self.is_empty() || !self.trusts(client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match IpAddr::from_str(hop) {
                Ok(address) => client = canonical(address),
                Err(_) => break,
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`) is that IPv4
/// address, so one client has one key whichever way it connected.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("10.0.0.1"), &headers(&["1.2.3.4"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_hops_are_walked_from_the_right() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.168.1.1".parse().unwrap();
        // peer 10.0.0.1 (trusted) says 192.168.1.1 (trusted) says 1.2.3.4.
        let h = headers(&["6.6.6.6, 1.2.3.4", "192.168.1.1"]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &h), ip("1.2.3.4"));
        // An untrusted peer's header is ignored.
        assert_eq!(trusted.client_ip(ip("8.8.8.8"), &h), ip("8.8.8.8"));
        // A garbage hop stops the walk at the last trusted proxy.
        let garbage = headers(&["1.2.3.4, not-an-ip"]);
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &garbage), ip("10.0.0.1"));
        // No header: the proxy itself.
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_addresses_and_bad_entries() {
        let trusted: TrustedProxies = "127.0.0.1".parse().unwrap();
        assert_eq!(
            trusted.client_ip(ip("::ffff:127.0.0.1"), &headers(&["::ffff:1.2.3.4"])),
            ip("1.2.3.4")
        );
        assert_eq!(
            "10.0.0.0/8, nope".parse::<TrustedProxies>(),
            Err(BadProxyEntry("nope".into()))
        );
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }
}
