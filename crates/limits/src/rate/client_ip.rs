//! Which client a request comes from: the socket's peer, or, only when
//! that peer is a proxy the configuration trusts, the nearest untrusted
//! address in `X-Forwarded-For`.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// A trusted-proxy entry that is neither an address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy `{entry}` is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1)")]
pub struct ClientIpError {
    /// The entry as written.
    pub entry: String,
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default):
/// the header is ignored and the socket's peer is the client, so a client
/// cannot pick its own rate-limit key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses addresses and CIDR blocks (`127.0.0.1`, `10.0.0.0/8`,
    /// `fd00::/8`).
    ///
    /// # Errors
    ///
    /// When an entry is neither an address nor a CIDR block.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, ClientIpError> {
        let nets = entries
            .iter()
            .map(|e| {
                let e = e.as_ref().trim();
                IpNet::from_str(e)
                    .or_else(|_| IpAddr::from_str(e).map(IpNet::from))
                    .map_err(|_| ClientIpError {
                        entry: e.to_owned(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`. `forwarded_for` holds the values of every
    /// `X-Forwarded-For` header in order. Walking from the right (the hop
    /// nearest to us), trusted proxies are skipped and the first untrusted
    /// address is the client; an unparseable entry ends the walk at the
    /// last proxy that was trusted, since anything left of it may be forged.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = canonical(ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, optionally with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return IpAddr::from_str(rest.split(']').next()?).ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(host).ok()
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket
/// reports) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), ["6.6.6.6"]), ip("10.0.0.1"));

        let t = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap_or_default();
        assert_eq!(t.client(ip("10.0.0.1"), ["1.2.3.4"]), ip("1.2.3.4"));
        // The client forged an entry on the left; the proxies appended the
        // real one.
        assert_eq!(
            t.client(ip("10.0.0.1"), ["6.6.6.6, 1.2.3.4, 10.0.0.2"]),
            ip("1.2.3.4")
        );
        assert_eq!(
            t.client(ip("10.0.0.1"), ["6.6.6.6", "1.2.3.4"]),
            ip("1.2.3.4")
        );
        assert_eq!(
            t.client(ip("::1"), ["[2001:db8::1]:443"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            t.client(ip("::ffff:10.0.0.1"), ["1.2.3.4:80"]),
            ip("1.2.3.4")
        );
        assert_eq!(
            t.client(ip("10.0.0.1"), ["garbage, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(t.client(ip("10.0.0.1"), Vec::<&str>::new()), ip("10.0.0.1"));
        assert_eq!(t.client(ip("8.8.8.8"), ["1.2.3.4"]), ip("8.8.8.8"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_err());
    }
}
