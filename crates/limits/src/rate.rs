//! Keyed rate limiting: GCRA (smooth, via `governor`) or a fixed window
//! with express-rate-limit's semantics, over a bounded key store.

mod client_ip;
#[cfg(feature = "tower")]
mod layer;
mod store;

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter as Governor};
use serde::Deserialize;

pub use client_ip::{ClientIpError, TrustedProxies};
#[cfg(feature = "tower")]
pub use layer::{RateLimitLayer, RateLimitService};

use store::{BoundedStore, Rank, Shared};

/// How requests are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `limit` requests per `window`, counted from a client's first request
    /// and reset all at once when its window ends (express-rate-limit's
    /// "100 requests per 15 minutes").
    #[default]
    FixedWindow,
    /// The generic cell rate algorithm: a burst of `limit`, refilled
    /// smoothly at `limit` per `window` (one every `window / limit`).
    Gcra,
}

/// The longest window a policy may have (365 days): beyond it the
/// arithmetic of the limiter's clock would overflow. Policies read from
/// files refuse longer windows; a longer one built in code is shortened
/// to this.
pub const MAX_WINDOW: Duration = Duration::from_secs(365 * 24 * 3600);

/// A rate limit: `limit` requests per `window` per client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Counting mode.
    #[serde(default)]
    pub mode: Mode,
    /// Requests allowed per window (or GCRA burst).
    pub limit: NonZeroU32,
    /// The window, e.g. `15m`.
    #[serde(with = "window_serde")]
    pub window: Duration,
    /// Clients tracked at most; beyond it the client nearest to a fresh
    /// limit is forgotten. Memory is about 64 bytes per client.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// The policy's name in the `RateLimit` headers.
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_max_clients() -> usize {
    100_000
}

fn default_name() -> String {
    "default".to_owned()
}

mod window_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// A window in humantime's grammar (`15m`, `1h30m`), longer than 0 and
    /// at most [`super::MAX_WINDOW`].
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        let window = settings::duration::parse(&s).map_err(serde::de::Error::custom)?;
        if window.is_zero() {
            return Err(serde::de::Error::custom("the window must be longer than 0"));
        }
        if window > super::MAX_WINDOW {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is longer than the longest window, 365 days"
            )));
        }
        Ok(window)
    }
}

impl Policy {
    /// `limit` per `window`, fixed window, 100,000 clients.
    pub fn fixed_window(limit: NonZeroU32, window: Duration) -> Self {
        Policy {
            mode: Mode::FixedWindow,
            limit,
            window,
            max_clients: default_max_clients(),
            name: default_name(),
        }
    }

    /// `limit` per `window` as GCRA (burst `limit`).
    pub fn gcra(limit: NonZeroU32, window: Duration) -> Self {
        Policy {
            mode: Mode::Gcra,
            ..Policy::fixed_window(limit, window)
        }
    }

    /// Sets how many clients are tracked at most.
    pub fn with_max_clients(mut self, n: usize) -> Self {
        self.max_clients = n;
        self
    }

    /// The `RateLimit-Policy` header value (IETF draft 8 and later, as
    /// express-rate-limit sends it): `"default";q=100;w=900`.
    pub fn header_value(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.limit,
            self.window.as_secs().max(1)
        )
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go ahead.
    pub allowed: bool,
    /// Requests left now.
    pub remaining: u32,
    /// Until the client's quota is whole again (window end, or GCRA's
    /// full refill).
    pub reset: Duration,
    /// For a refused request: until one would be allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The `RateLimit` header value: `"default";r=99;t=900`, `t` rounded up.
    pub fn header_value(&self, policy: &Policy) -> String {
        format!(
            "\"{}\";r={};t={}",
            policy.name,
            self.remaining,
            ceil_secs(self.reset)
        )
    }

    /// The `Retry-After` header value in whole seconds, rounded up (never 0,
    /// so a client that obeys it is allowed).
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| ceil_secs(d).max(1))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Fixed-window state: the window's end (nanoseconds on the limiter's
/// clock) and the requests counted in it.
#[derive(Debug, Clone, Copy)]
struct Window {
    ends: u64,
    count: u32,
}

impl Rank for Window {
    fn rank(&self) -> u64 {
        self.ends
    }
}

enum Engine<K: Hash + Eq + Clone, C: Clock> {
    Gcra {
        limiter: Governor<K, Shared<K>, C, StateInformationMiddleware>,
        store: Arc<BoundedStore<K, Nanos>>,
    },
    Fixed {
        store: BoundedStore<K, Window>,
        clock: C,
        start: C::Instant,
    },
}

/// A keyed rate limiter. Decisions are exact under concurrency (each key's
/// state changes under its shard's lock) and memory is bounded by
/// [`Policy::max_clients`].
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use limits::rate::{Policy, RateLimiter};
///
/// let limit = NonZeroU32::new(2).unwrap();
/// let limiter = RateLimiter::new(Policy::fixed_window(limit, Duration::from_secs(900)));
/// assert!(limiter.check(&"10.0.0.1").allowed);
/// assert!(limiter.check(&"10.0.0.1").allowed);
/// let third = limiter.check(&"10.0.0.1");
/// assert!(!third.allowed);
/// assert_eq!(third.retry_after_secs(), Some(900));
/// assert!(limiter.check(&"10.0.0.2").allowed);
/// ```
pub struct RateLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    policy: Policy,
    engine: Engine<K, C>,
}

impl<K: Hash + Eq + Clone, C: Clock> fmt::Debug for RateLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter on the monotonic clock.
    pub fn new(policy: Policy) -> Self {
        RateLimiter::with_clock(policy, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> RateLimiter<K, C> {
    /// A limiter on `clock` (governor's `FakeRelativeClock` in tests).
    pub fn with_clock(mut policy: Policy, clock: C) -> Self {
        policy.window = policy.window.min(MAX_WINDOW);
        let engine = match policy.mode {
            Mode::Gcra => {
                let period = policy.window / policy.limit.get();
                let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                    .unwrap_or_else(|| Quota::per_second(policy.limit))
                    .allow_burst(policy.limit);
                let store = Arc::new(BoundedStore::new(policy.max_clients));
                Engine::Gcra {
                    limiter: Governor::new(quota, Shared(Arc::clone(&store)), clock),
                    store,
                }
            }
            Mode::FixedWindow => Engine::Fixed {
                store: BoundedStore::new(policy.max_clients),
                start: clock.now(),
                clock,
            },
        };
        RateLimiter { policy, engine }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Counts one request from `key` and decides.
    pub fn check(&self, key: &K) -> Decision {
        match &self.engine {
            Engine::Gcra { limiter, .. } => match limiter.check_key(key) {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    let per_cell = self.policy.window / self.policy.limit.get();
                    Decision {
                        allowed: true,
                        remaining,
                        reset: per_cell * (self.policy.limit.get() - remaining),
                        retry_after: None,
                    }
                }
                Err(not_until) => {
                    let wait = not_until.wait_time_from(limiter.clock().now());
                    let per_cell = self.policy.window / self.policy.limit.get();
                    Decision {
                        allowed: false,
                        remaining: 0,
                        reset: wait + per_cell * self.policy.limit.get().saturating_sub(1),
                        retry_after: Some(wait),
                    }
                }
            },
            Engine::Fixed {
                store,
                clock,
                start,
            } => {
                let now = clock.now().duration_since(*start).as_u64();
                let window = u64::try_from(self.policy.window.as_nanos()).unwrap_or(u64::MAX);
                let limit = self.policy.limit.get();
                let result = store.update(key, |old| {
                    let mut w = match old {
                        Some(w) if w.ends > now => w,
                        _ => Window {
                            ends: now.saturating_add(window),
                            count: 0,
                        },
                    };
                    w.count = w.count.saturating_add(1).min(limit.saturating_add(1));
                    Ok::<_, std::convert::Infallible>((w, Some(w)))
                });
                let w = match result {
                    Ok(w) => w,
                    Err(never) => match never {},
                };
                let reset = Duration::from_nanos(w.ends.saturating_sub(now));
                let allowed = w.count <= limit;
                Decision {
                    allowed,
                    remaining: limit.saturating_sub(w.count),
                    reset,
                    retry_after: (!allowed).then_some(reset),
                }
            }
        }
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        match &self.engine {
            Engine::Gcra { store, .. } => store.len(),
            Engine::Fixed { store, .. } => store.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn windows_take_humantimes_grammar() {
        let p: Policy = serde_json::from_str(r#"{"limit": 100, "window": "1h30m"}"#).expect("json");
        assert_eq!(p.window, Duration::from_secs(5400));
        for bad in [r#""0s""#, r#""400d""#, r#""15""#] {
            let text = format!(r#"{{"limit": 1, "window": {bad}}}"#);
            assert!(serde_json::from_str::<Policy>(&text).is_err(), "{bad}");
        }
    }

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN)
    }

    /// Regression (fuzz target rate_policy): a window longer than 584
    /// years panicked inside governor. Read from a file it is refused;
    /// built in code it is shortened to MAX_WINDOW.
    #[test]
    fn windows_beyond_a_year_are_refused_or_shortened() {
        let err =
            serde_json::from_str::<Policy>(r#"{"limit": 10, "window": "700y", "mode": "gcra"}"#)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("longest window"), "{err}");
        for policy in [
            Policy::gcra(n(10), Duration::MAX),
            Policy::fixed_window(n(10), Duration::MAX),
        ] {
            let l: RateLimiter<u32> = RateLimiter::new(policy);
            assert_eq!(l.policy().window, MAX_WINDOW);
            for _ in 0..11 {
                let _ = l.check(&1);
            }
            assert!(!l.check(&1).allowed);
        }
    }

    #[test]
    fn fixed_window_resets_at_the_windows_end() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(
            Policy::fixed_window(n(100), Duration::from_secs(900)),
            clock.clone(),
        );
        for i in 0..100 {
            let d = l.check(&1u8);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 99 - i);
        }
        clock.advance(Duration::from_secs(600));
        let d = l.check(&1u8);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs(), Some(300));
        assert_eq!(d.header_value(l.policy()), "\"default\";r=0;t=300");
        clock.advance(Duration::from_secs(300));
        let d = l.check(&1u8);
        assert!(d.allowed);
        assert_eq!(d.remaining, 99);
        assert_eq!(d.reset, Duration::from_secs(900));
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        let clock = FakeRelativeClock::default();
        let l =
            RateLimiter::with_clock(Policy::gcra(n(10), Duration::from_secs(10)), clock.clone());
        for _ in 0..10 {
            assert!(l.check(&"k").allowed);
        }
        let d = l.check(&"k");
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert!(l.check(&"k").allowed);
        assert!(!l.check(&"k").allowed);
    }

    #[test]
    fn the_limit_holds_exactly_under_eight_threads() {
        for policy in [
            Policy::fixed_window(n(1000), Duration::from_secs(3600)),
            Policy::gcra(n(1000), Duration::from_secs(3600)),
        ] {
            let l = Arc::new(RateLimiter::new(policy));
            let allowed: u32 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let l = Arc::clone(&l);
                        s.spawn(move || (0..500).filter(|_| l.check(&7u32).allowed).count() as u32)
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).sum()
            });
            assert_eq!(allowed, 1000);
        }
    }
}
