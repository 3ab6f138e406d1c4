//! The rate limiter as a tower layer for HTTP servers.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use super::{Decision, RateLimiter, TrustedProxies};

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Limits every request by client IP. Allowed responses carry
/// `RateLimit` and `RateLimit-Policy`; refused ones are `429 Too Many
/// Requests` with those and `Retry-After`, and never reach the service.
///
/// The peer address comes from axum's `ConnectInfo<SocketAddr>` (serve
/// with `into_make_service_with_connect_info::<SocketAddr>()`); without
/// it every request counts against one shared key, so the limit still
/// holds.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter<IpAddr>>,
    proxies: Arc<TrustedProxies>,
    policy_header: HeaderValue,
}

impl RateLimitLayer {
    /// A layer over `limiter`, believing `X-Forwarded-For` only from
    /// `proxies`.
    pub fn new(limiter: Arc<RateLimiter<IpAddr>>, proxies: TrustedProxies) -> Self {
        let policy_header = HeaderValue::from_str(&limiter.policy().header_value())
            .unwrap_or_else(|_| HeaderValue::from_static("\"default\""));
        RateLimitLayer {
            limiter,
            proxies: Arc::new(proxies),
            policy_header,
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around another.
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> RateLimitService<S> {
    fn decide<B>(&self, req: &Request<B>) -> Decision {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let forwarded = req
            .headers()
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let client = self.layer.proxies.client(peer, forwarded);
        self.layer.limiter.check(&client)
    }

    fn headers(&self, decision: &Decision, headers: &mut http::HeaderMap) {
        let policy = self.layer.limiter.policy();
        if let Ok(v) = HeaderValue::from_str(&decision.header_value(policy)) {
            headers.insert(RATELIMIT, v);
        }
        headers.insert(RATELIMIT_POLICY, self.layer.policy_header.clone());
        if let Some(secs) = decision.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Response<R>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let decision = self.decide(&req);
        if !decision.allowed {
            let mut response = Response::new(R::default());
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            self.headers(&decision, response.headers_mut());
            return Box::pin(std::future::ready(Ok(response)));
        }
        let this = self.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            this.headers(&decision, response.headers_mut());
            Ok(response)
        })
    }
}
