//! How long the rate limiter takes to decide, uncontended: one client
//! (a hot key) and 10,000 clients (keys spread over the store), for both
//! modes. The target is <= 100 ns per decision.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use limits::rate::{Policy, RateLimiter};

fn decide(c: &mut Criterion) {
    let limit = NonZeroU32::new(u32::MAX).unwrap_or(NonZeroU32::MIN);
    let window = Duration::from_secs(900);
    for (mode, policy) in [
        ("fixed-window", Policy::fixed_window(limit, window)),
        ("gcra", Policy::gcra(limit, window)),
    ] {
        let limiter = RateLimiter::<IpAddr>::new(policy);
        let one = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        c.bench_function(&format!("rate/{mode}/one client"), |b| {
            b.iter(|| black_box(limiter.check(black_box(&one))))
        });
        let clients: Vec<IpAddr> = (0..10_000u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        let mut i = 0;
        c.bench_function(&format!("rate/{mode}/10k clients"), |b| {
            b.iter(|| {
                i = (i + 1) % clients.len();
                black_box(limiter.check(&clients[i]))
            })
        });
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
