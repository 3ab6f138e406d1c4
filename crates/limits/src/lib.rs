//! Limits that hold.
//!
//! [`containers`]: container memory/CPU/PIDs limits declared in a policy
//! file or read from a compose file, planned against the running
//! containers, applied live through the Docker Engine and checked for
//! drift (feature `docker`).
//!
//! [`rate`]: a keyed rate limiter for HTTP servers, GCRA (via `governor`)
//! or a fixed window with express-rate-limit's semantics ("100 requests
//! per 15 minutes", reset at the window's end), over a bounded key store,
//! with a tower layer that answers `429` with `Retry-After` and the IETF
//! `RateLimit` / `RateLimit-Policy` headers and takes the client's address
//! from the socket, or from `X-Forwarded-For` only behind trusted proxies.
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use limits::rate::{Policy, RateLimitLayer, RateLimiter, TrustedProxies};
//!
//! let policy = Policy::fixed_window(NonZeroU32::new(100).unwrap(), Duration::from_secs(15 * 60));
//! let layer = RateLimitLayer::new(Arc::new(RateLimiter::new(policy)), TrustedProxies::default());
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(layer);
//! ```

#[cfg(feature = "docker")]
pub mod containers;
pub mod rate;
