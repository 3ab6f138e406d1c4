//! What clients and probed services send: `Accept` headers (content
//! negotiation), `X-Forwarded-For` chains (the rate limiter's client IP)
//! and JSON health bodies. Never a panic; an untrusted peer is always its
//! own client.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use limits::rate::TrustedProxies;
use metrics_core::Format;
use metrics_core::collectors::probe::health;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Format::negotiate(Some(&text));
    let _ = health::parse(data);

    let proxies = TrustedProxies::parse(&["10.0.0.0/8", "::1", "fd00::/8"]).expect("proxies");
    let mut lines = text.lines();
    let peer: IpAddr = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(IpAddr::from([10, 0, 0, 1]));
    let forwarded: Vec<&str> = lines.collect();
    let client = proxies.client(peer, forwarded.iter().copied());
    if !proxies.trusts(peer) {
        let canonical = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        assert_eq!(client, canonical);
    }
    let _ = TrustedProxies::parse(&forwarded);
});
