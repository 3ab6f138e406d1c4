//! Metrics you can act on: collectors behind one trait, Prometheus and
//! OpenMetrics text, a JSON snapshot in human units, and threshold alerts.
//!
//! A [`Collector`] returns [`Family`]s of samples in base units (bytes,
//! seconds, ratios 0-1). A [`Scraper`] runs collectors concurrently, each
//! under its own timeout, so one hung database or probe never stalls a
//! scrape: it yields its last good value (or nothing) and
//! `shipshape_collector_up{collector="..."} 0`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use metrics_core::{Format, HostCollector, Limits, Scraper, render};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let scraper = Scraper::new(vec![(Arc::new(HostCollector::default()), Limits::default())]);
//! let (snapshot, _status) = scraper.scrape().await;
//! let text = render(&snapshot, Format::Prometheus);
//! assert!(text.contains("shipshape_host_memory_used_ratio"));
//! # }
//! ```

pub mod alerts;
pub mod collector;
pub mod collectors;
pub mod config;
pub mod model;
pub mod render;

pub use alerts::{Alert, Evaluator, Notification, Rule, Webhooks};
pub use collector::{CollectError, Collector, CollectorStatus, Collectors, Limits, Scraper};
pub use collectors::HostCollector;
pub use config::{Config, ConfigError};
pub use model::{Family, Kind, Sample, Snapshot, Unit};
pub use render::{Format, render, to_json};
