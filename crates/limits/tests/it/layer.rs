//! Client addresses from the socket or, behind trusted proxies, from
//! X-Forwarded-For; the 429 answer and its headers.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use limits::rate::{Policy, RateLimitLayer, RateLimiter, TrustedProxies};
use test_support::http;

/// Serves `/` behind the layer; returns the address.
async fn serve(limit: u32, proxies: &[&str]) -> SocketAddr {
    let policy = Policy::fixed_window(
        NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN),
        Duration::from_secs(60),
    );
    let layer = RateLimitLayer::new(
        Arc::new(RateLimiter::new(policy)),
        TrustedProxies::parse(proxies).expect("proxies"),
    );
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

/// Status codes of `n` requests with these headers, sent from a blocking
/// thread.
async fn statuses(
    addr: SocketAddr,
    n: usize,
    headers: &'static [(&'static str, &'static str)],
) -> Vec<u16> {
    tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|_| {
                http::get(addr, "/", headers)
                    .map(|r| r.status())
                    .unwrap_or(0)
            })
            .collect()
    })
    .await
    .expect("client thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_clients_are_told_apart_only_behind_a_trusted_proxy() {
    let trusted = serve(3, &["127.0.0.1"]).await;
    let a = statuses(trusted, 4, &[("X-Forwarded-For", "203.0.113.7")]).await;
    let b = statuses(
        trusted,
        3,
        &[("X-Forwarded-For", "198.51.100.1, 203.0.113.9")],
    )
    .await;
    assert_eq!(a, [200, 200, 200, 429]);
    assert_eq!(
        b,
        [200, 200, 200],
        "a different client behind the proxy has its own limit"
    );

    // Without trusted proxies the header is ignored: one client, one limit.
    let direct = serve(3, &[]).await;
    let a = statuses(direct, 2, &[("X-Forwarded-For", "203.0.113.7")]).await;
    let b = statuses(direct, 2, &[("X-Forwarded-For", "198.51.100.1")]).await;
    assert_eq!([a, b].concat(), [200, 200, 200, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_carry_retry_after_and_the_policy() {
    let addr = serve(1, &[]).await;
    let responses = tokio::task::spawn_blocking(move || {
        (0..2)
            .map(|_| http::get(addr, "/", &[]).expect("GET"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("client thread");
    assert_eq!(responses[0].status(), 200);
    assert_eq!(responses[0].text(), "hello");
    assert_eq!(
        responses[0].header("ratelimit"),
        Some("\"default\";r=0;t=60")
    );
    let refused = &responses[1];
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.header("retry-after"), Some("60"));
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"default\";q=1;w=60")
    );
    assert!(refused.body.is_empty());
}
