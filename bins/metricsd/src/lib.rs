//! metricsd: serves what metrics-core collects, for Prometheus
//! (`/metrics`, text 0.0.4 or OpenMetrics by `Accept`) and as JSON
//! (`/api/v1/metrics`, `/api/v1/alerts`), evaluates alert rules, and
//! rate-limits every route.
//!
//! The configuration file is metrics-core's ([`metrics_core::Config`])
//! plus a `[server]` table:
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:9188"
//! token_env = "METRICSD_TOKEN"       # bearer token for /api/v1/* (or token_file)
//! trusted_proxies = ["10.0.0.0/8"]   # X-Forwarded-For believed only from these
//! rate_limit = { limit = 600, window = "1m" }
//! max_connections = 256              # the idle one longest is closed to make room
//! header_timeout = "10s"             # for a request's headers to arrive
//! idle_timeout = "60s"               # a connection with nothing moving is closed
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

pub mod conn;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use limits::rate::{Policy, RateLimitLayer, RateLimiter, TrustedProxies};
use metrics_core::{Config, Evaluator, Format, Scraper, Webhooks};
use serde::Deserialize;
use settings::{ExposeSecret, Secret};

/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9188";

/// The `[server]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen (default 127.0.0.1:9188).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The environment variable holding the API's bearer token.
    pub token_env: Option<String>,
    /// A file (mode 0600) whose first line is the API's bearer token.
    pub token_file: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The rate limit per client, on every route (default 600 per minute).
    #[serde(default = "default_rate")]
    pub rate_limit: Policy,
    /// Connections open at once (default 256); when all are taken, the
    /// one idle longest is closed to make room.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time for a request's headers to arrive (default 10s).
    #[serde(default = "default_header_timeout", with = "settings::duration::serde")]
    pub header_timeout: std::time::Duration,
    /// Time a connection may sit with nothing moving (default 60s).
    #[serde(default = "default_idle_timeout", with = "settings::duration::serde")]
    pub idle_timeout: std::time::Duration,
}

fn default_max_connections() -> usize {
    256
}

fn default_header_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_idle_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

impl ServerConfig {
    fn bounds(&self) -> conn::Bounds {
        conn::Bounds {
            max: self.max_connections,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            token_env: None,
            token_file: None,
            trusted_proxies: Vec::new(),
            rate_limit: default_rate(),
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9188))
}

fn default_rate() -> Policy {
    Policy::fixed_window(
        std::num::NonZeroU32::new(600).unwrap_or(std::num::NonZeroU32::MIN),
        std::time::Duration::from_secs(60),
    )
}

/// Reads a configuration file: the `[server]` table and the rest.
///
/// # Errors
///
/// When the file cannot be read, or as [`parse`].
pub fn load(path: &Path) -> Result<(ServerConfig, Config)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Parses a configuration: the `[server]` table and the rest.
///
/// # Errors
///
/// When the TOML does not parse, or a table or value is wrong (the
/// message names the table and line).
pub fn parse(text: &str) -> Result<(ServerConfig, Config)> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| anyhow::anyhow!(settings::excerpt(&e.to_string())))?;
    let server = match table.remove("server") {
        Some(v) => v.try_into::<ServerConfig>().context("[server]")?,
        None => ServerConfig::default(),
    };
    let rest = toml::to_string(&table)?;
    let config = Config::parse(&rest)?;
    Ok((server, config))
}

/// Everything the routes share.
#[derive(Debug, Clone)]
pub struct AppState {
    scraper: Scraper,
    connections: Arc<conn::Connections>,
    evaluator: Arc<Mutex<Evaluator>>,
    token: Option<Arc<str>>,
}

impl AppState {
    /// The state for `config`: collectors built and secrets read.
    ///
    /// # Errors
    ///
    /// When the token, a password or a webhook cannot be read, or a
    /// collector cannot be built.
    pub fn new(server: &ServerConfig, config: &Config) -> Result<Self> {
        let secret = Secret::pick("token", server.token_env.clone(), server.token_file.clone())
            .map_err(|e| anyhow::anyhow!("[server]: {e}"))?;
        let token = match secret {
            Some(secret) => Some(
                secret
                    .read()
                    .context("[server] token")?
                    .expose_secret()
                    .to_owned(),
            ),
            None => None,
        };
        let connections = Arc::new(conn::Connections::default());
        let mut collectors = config.collectors()?;
        collectors.push((
            Arc::clone(&connections) as Arc<dyn metrics_core::Collector>,
            metrics_core::Limits::default(),
        ));
        Ok(AppState {
            scraper: metrics_core::Scraper::new(collectors),
            connections,
            evaluator: Arc::new(Mutex::new(Evaluator::new(config.rules()))),
            token: token.map(Arc::from),
        })
    }

    /// The scraper.
    pub fn scraper(&self) -> &Scraper {
        &self.scraper
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant time in the token's length.
        given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The routes, rate-limited.
///
/// # Errors
///
/// When `trusted_proxies` holds something that is not an address or a
/// CIDR block.
pub fn router(state: AppState, server: &ServerConfig) -> Result<Router> {
    let proxies = TrustedProxies::parse(&server.trusted_proxies).context("[server]")?;
    let limiter = Arc::new(RateLimiter::new(server.rate_limit.clone()));
    Ok(Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/metrics", get(metrics_json))
        .route("/api/v1/alerts", get(alerts_json))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
        .layer(RateLimitLayer::new(limiter, proxies)))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (snapshot, _) = state.scraper.scrape().await;
    let body = metrics_core::render(&snapshot, format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required (Authorization: Bearer TOKEN)\n",
    )
        .into_response()
}

async fn metrics_json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    let (snapshot, statuses) = state.scraper.scrape().await;
    axum::Json(metrics_core::to_json(&snapshot, &statuses)).into_response()
}

async fn alerts_json(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    let evaluator = state
        .evaluator
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    axum::Json(serde_json::json!({
        "rules": evaluator.rules().len(),
        "alerts": evaluator.alerts(),
    }))
    .into_response()
}

/// Evaluates the alert rules every `interval` and sends what changes to
/// the webhooks; runs until the task is dropped.
pub async fn alert_loop(state: AppState, webhooks: Webhooks, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (snapshot, _) = state.scraper.scrape().await;
        let changes = state
            .evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .evaluate(&snapshot, chrono::Utc::now());
        for change in changes {
            tracing::info!("{change}");
            if !webhooks.is_empty() {
                let webhooks = webhooks.clone();
                tokio::spawn(async move { webhooks.send(&change).await });
            }
        }
    }
}

/// Serves until `shutdown` completes.
///
/// # Errors
///
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    server: &ServerConfig,
    webhooks: Webhooks,
    interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(state.clone(), server)?;
    let connections = Arc::clone(&state.connections);
    let alerts = tokio::spawn(alert_loop(state, webhooks, interval));
    conn::accept(listener, app, server.bounds(), connections, shutdown).await;
    alerts.abort();
    Ok(())
}

/// What `metricsd check` found: every collector's status and every
/// probe or server that is down.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// True when every collector is up and nothing is down.
    pub ok: bool,
    /// One entry per collector.
    pub collectors: Vec<serde_json::Value>,
    /// `metric{labels}` of each probe or server that is down.
    pub down: Vec<String>,
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.collectors {
            let up = c["up"].as_bool().unwrap_or(false);
            writeln!(
                f,
                "{} {:<24} {:>7.1} ms{}",
                if up { "ok  " } else { "FAIL" },
                c["name"].as_str().unwrap_or_default(),
                c["ms"].as_f64().unwrap_or_default(),
                c["error"]
                    .as_str()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            )?;
        }
        for d in &self.down {
            writeln!(f, "FAIL {d} = 0")?;
        }
        Ok(())
    }
}

/// `metricsd check`: every collector (and so every probe) once.
///
/// # Errors
///
/// When the collectors cannot be built from `config` (a password that
/// cannot be read, say).
pub async fn check(config: &Config) -> Result<CheckReport> {
    let scraper = config.scraper()?;
    let (snapshot, statuses) = scraper.scrape().await;
    let collectors = statuses
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "up": s.up,
                "ms": s.duration.as_secs_f64() * 1000.0,
                "error": s.error,
            })
        })
        .collect();
    let mut down = Vec::new();
    for name in ["shipshape_probe_up", "shipshape_pg_up"] {
        for sample in snapshot.family(name).iter().flat_map(|f| &f.samples) {
            if sample.value < 1.0 {
                let who: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                down.push(format!("{name}{{{}}}", who.join(",")));
            }
        }
    }
    Ok(CheckReport {
        ok: statuses.iter().all(|s| s.up) && down.is_empty(),
        collectors,
        down,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_rate_limit_window_takes_humantimes_grammar() {
        let (server, _) =
            parse("[server]\nrate_limit = { limit = 10, window = '1h30m' }\n").expect("parses");
        assert_eq!(
            server.rate_limit.window,
            std::time::Duration::from_secs(5400)
        );
        let e = parse("[server]\nrate_limit = { limit = 10, window = '90' }\n")
            .expect_err("a bare number");
        assert!(format!("{e:#}").contains("1h30m"), "{e:#}");
    }
}
