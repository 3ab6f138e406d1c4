//! The [`Collector`] trait and the [`Scraper`] that runs collectors, each
//! under its own timeout, into one [`Snapshot`].

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::model::{Family, Snapshot, Unit};

/// Why one collection failed. The scrape goes on without it (or with its
/// last good value); `shipshape_collector_up` says it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CollectError {
    /// What went wrong, for a log line.
    pub message: String,
}

impl CollectError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        CollectError {
            message: message.into(),
        }
    }
}

/// A source of metric families: the host, a database, a set of probes, a
/// backup repository, the Docker Engine.
///
/// `collect` is called once per scrape (and per alert evaluation). It should
/// do its own I/O and return promptly; the [`Scraper`] cancels it at its
/// timeout, so it must not leave shared state half-updated across an
/// `.await`.
#[async_trait]
pub trait Collector: Send + Sync + Debug {
    /// A short name, the `collector` label of the scraper's own metrics
    /// (`host`, `postgres:main`, `probes`).
    fn name(&self) -> &str;

    /// Collects the current values.
    async fn collect(&self) -> Result<Vec<Family>, CollectError>;
}

#[async_trait]
impl<T: Collector + ?Sized> Collector for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        (**self).collect().await
    }
}

#[async_trait]
impl<T: Collector + ?Sized> Collector for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        (**self).collect().await
    }
}

/// How long a collection may take, and how long its last good value stands
/// in for a failed or slow one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The collection is cancelled after this long.
    pub timeout: Duration,
    /// A failed or timed-out collection is replaced by the last good one
    /// when that is at most this old; otherwise its families are left out.
    pub keep_last_good: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(5),
            keep_last_good: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
struct Entry {
    collector: Arc<dyn Collector>,
    limits: Limits,
    state: Mutex<EntryState>,
}

#[derive(Debug, Default)]
struct EntryState {
    last_good: Option<(Instant, Arc<Vec<Family>>)>,
    failing: bool,
}

/// What one collector did in one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorStatus {
    /// The collector's name.
    pub name: String,
    /// Whether this collection succeeded in time.
    pub up: bool,
    /// How long it ran (at most its timeout).
    pub duration: Duration,
    /// Whether its last good value was served instead.
    pub stale: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// Collectors, each with the limits it runs under: what a [`Scraper`] is
/// made of.
pub type Collectors = Vec<(Arc<dyn Collector>, Limits)>;

/// Runs collectors concurrently, each under its own [`Limits`], and merges
/// what they return.
///
/// A slow or hung collector is cancelled at its timeout, so a scrape takes
/// at most the longest timeout however the collectors behave. Memory: the
/// last good families of each collector.
#[derive(Debug, Default, Clone)]
pub struct Scraper {
    entries: Arc<Vec<Entry>>,
}

impl Scraper {
    /// A scraper over these collectors.
    pub fn new(collectors: Collectors) -> Self {
        Scraper {
            entries: Arc::new(
                collectors
                    .into_iter()
                    .map(|(collector, limits)| Entry {
                        collector,
                        limits,
                        state: Mutex::default(),
                    })
                    .collect(),
            ),
        }
    }

    /// The collectors' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| e.collector.name().to_owned())
            .collect()
    }

    /// Runs every collector once and returns the merged snapshot (with the
    /// scraper's own `shipshape_collector_*` families) and what each did.
    pub async fn scrape(&self) -> (Snapshot, Vec<CollectorStatus>) {
        let runs = self.entries.iter().map(|entry| async move {
            let started = Instant::now();
            let result =
                match tokio::time::timeout(entry.limits.timeout, entry.collector.collect()).await {
                    Ok(result) => result,
                    Err(_) => Err(CollectError::new(format!(
                        "timed out after {:?}",
                        entry.limits.timeout
                    ))),
                };
            (entry, started.elapsed(), result)
        });
        let results = futures::future::join_all(runs).await;

        let mut snapshot = Snapshot::default();
        let mut statuses = Vec::with_capacity(results.len());
        let mut up = Family::gauge(
            "shipshape_collector_up",
            "Whether the collector's last collection succeeded within its timeout.",
        );
        let mut duration = Family::gauge(
            "shipshape_collector_duration",
            "How long the collector's last collection took.",
        )
        .with_unit(Unit::Seconds);
        let mut stale = Family::gauge(
            "shipshape_collector_stale",
            "Whether the collector's families are its last good values rather than this scrape's.",
        );
        for (entry, took, result) in results {
            let name = entry.collector.name();
            let mut state = entry.state.lock().unwrap_or_else(PoisonError::into_inner);
            let status = match result {
                Ok(families) => {
                    if state.failing {
                        tracing::info!(collector = name, "collector recovered");
                    }
                    state.failing = false;
                    let families = Arc::new(families);
                    snapshot.extend(families.iter().cloned());
                    state.last_good = Some((Instant::now(), families));
                    CollectorStatus {
                        name: name.to_owned(),
                        up: true,
                        duration: took,
                        stale: false,
                        error: None,
                    }
                }
                Err(e) => {
                    if !state.failing {
                        tracing::warn!(collector = name, "collection failed: {e}");
                    }
                    state.failing = true;
                    let last = state
                        .last_good
                        .as_ref()
                        .filter(|(at, _)| at.elapsed() <= entry.limits.keep_last_good);
                    if let Some((_, families)) = last {
                        snapshot.extend(families.iter().cloned());
                    }
                    CollectorStatus {
                        name: name.to_owned(),
                        up: false,
                        duration: took,
                        stale: last.is_some(),
                        error: Some(e.message),
                    }
                }
            };
            let labels = [("collector", name)];
            up.push(&labels, f64::from(u8::from(status.up)));
            duration.push(&labels, status.duration.as_secs_f64());
            stale.push(&labels, f64::from(u8::from(status.stale)));
            statuses.push(status);
        }
        snapshot.extend([up, duration, stale]);
        (snapshot, statuses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(&'static str, Option<Duration>);

    #[async_trait]
    impl Collector for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn collect(&self) -> Result<Vec<Family>, CollectError> {
            if let Some(d) = self.1 {
                tokio::time::sleep(d).await;
            }
            Ok(vec![
                Family::gauge(format!("t_{}", self.0), "t").with_value(1.0),
            ])
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_collector_is_cut_off_at_its_timeout() {
        let limits = Limits {
            timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let scraper = Scraper::new(vec![
            (Arc::new(Fixed("fast", None)), limits),
            (
                Arc::new(Fixed("hung", Some(Duration::from_secs(3600)))),
                limits,
            ),
        ]);
        let started = tokio::time::Instant::now();
        let (snapshot, statuses) = scraper.scrape().await;
        assert!(started.elapsed() < Duration::from_millis(150));
        assert!(snapshot.family("t_fast").is_some());
        assert!(snapshot.family("t_hung").is_none());
        assert!(statuses[0].up);
        assert!(!statuses[1].up);
        let up = snapshot
            .family("shipshape_collector_up")
            .map(|f| &f.samples);
        assert_eq!(up.map(|s| s[1].value), Some(0.0));
    }
}
