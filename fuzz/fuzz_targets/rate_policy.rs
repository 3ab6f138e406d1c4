//! Rate-limit policies as JSON (what `shipshape_ratelimiter_new` takes
//! from C callers; metricsd reads the same struct from TOML) and client
//! keys: never a panic; a policy that parses limits, and a client's first
//! request is allowed.
#![no_main]

use limits::rate::{Policy, RateLimiter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (policy, key) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(mut policy) = serde_json::from_slice::<Policy>(policy) else {
        return;
    };
    // The fuzzer picks the policy; memory stays bounded.
    policy.max_clients = policy.max_clients.min(1024);
    let limiter = RateLimiter::new(policy);
    let key = String::from_utf8_lossy(key).into_owned();
    let first = limiter.check(&key);
    assert!(first.allowed, "a client's first request was refused");
    for _ in 0..limiter.policy().limit.get().min(64) {
        let d = limiter.check(&key);
        assert!(d.allowed || d.retry_after.is_some());
        let _ = d.header_value(limiter.policy());
    }
});
