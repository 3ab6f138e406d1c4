//! The rate limiter.

use std::ffi::{c_char, c_int};

use limits::rate::{Policy, RateLimiter};
use serde_json::json;

use crate::{Failure, SHIPSHAPE_OK, arg, boundary, give};

/// A rate limiter: one policy, many clients (keys).
pub struct ShipshapeRateLimiter {
    limiter: RateLimiter<String>,
}

/// Creates a rate limiter from `policy_json`: `{"limit": 100, "window":
/// "15m", "mode": "fixed-window"}` (`mode`: `fixed-window`, the default,
/// or `gcra`; optional `max_clients`, `name`). On success `*limiter` is
/// the handle, to release with [`shipshape_ratelimiter_free`].
///
/// # Safety
/// `policy_json` is null or NUL-terminated; `limiter` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_ratelimiter_new(
    policy_json: *const c_char,
    limiter: *mut *mut ShipshapeRateLimiter,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let text = unsafe { arg(policy_json, "policy_json") }?;
        if limiter.is_null() {
            return Err(Failure("the output pointer is null".into()));
        }
        let policy: Policy =
            serde_json::from_str(text).map_err(|e| Failure(format!("policy_json: {e}")))?;
        let handle = Box::new(ShipshapeRateLimiter {
            limiter: RateLimiter::new(policy),
        });
        // SAFETY: checked not null above; the caller promises it is writable.
        unsafe { *limiter = Box::into_raw(handle) };
        Ok(SHIPSHAPE_OK)
    })
}

/// Counts one request of client `key`. Returns 1 when it may go ahead, 0
/// when it is over the limit, -1 on error. When `decision_json` is not
/// null it receives `{"allowed", "remaining", "reset_ms",
/// "retry_after_secs", "ratelimit", "ratelimit_policy"}` (the last two are
/// the `RateLimit` and `RateLimit-Policy` header values).
///
/// # Safety
/// `limiter` is null or a live handle from [`shipshape_ratelimiter_new`];
/// `key` is null or NUL-terminated; `decision_json` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_ratelimiter_check(
    limiter: *const ShipshapeRateLimiter,
    key: *const c_char,
    decision_json: *mut *mut c_char,
) -> c_int {
    boundary(|| {
        // SAFETY: the caller's promise, passed on.
        let key = unsafe { arg(key, "key") }?;
        // SAFETY: null or a live handle, the caller promises; shared
        // access only (the limiter is Sync).
        let Some(handle) = (unsafe { limiter.as_ref() }) else {
            return Err(Failure("limiter is a null pointer".into()));
        };
        let decision = handle.limiter.check(&key.to_owned());
        if !decision_json.is_null() {
            let policy = handle.limiter.policy();
            let json = json!({
                "allowed": decision.allowed,
                "remaining": decision.remaining,
                "reset_ms": u64::try_from(decision.reset.as_millis()).unwrap_or(u64::MAX),
                "retry_after_secs": decision.retry_after_secs(),
                "ratelimit": decision.header_value(policy),
                "ratelimit_policy": policy.header_value(),
            });
            // SAFETY: not null (checked); the caller promises it is writable.
            unsafe { give(decision_json, json.to_string()) }?;
        }
        Ok(c_int::from(decision.allowed))
    })
}

/// Releases a rate limiter. Null is fine.
///
/// # Safety
/// `limiter` is null or a handle from [`shipshape_ratelimiter_new`], not
/// used again after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shipshape_ratelimiter_free(limiter: *mut ShipshapeRateLimiter) {
    if !limiter.is_null() {
        // SAFETY: the caller promises it came from `Box::into_raw` in
        // `shipshape_ratelimiter_new` and is freed once.
        drop(unsafe { Box::from_raw(limiter) });
    }
}
