//! Containers through the Docker Engine API: counts by state, and per
//! running container memory (computed as `docker stats` does) against its
//! own limit, CPU from its own previous sample, network and block I/O,
//! restarts, OOM kills and health.
//!
//! Stats are requested one-shot (`one-shot=true`: no priming second sample
//! per container), all in one wave up to a bound, together with an inspect
//! for limits, restarts and health. The engine answers one-shot requests at
//! its stats collector's next tick (every second on Docker 20.10), so a
//! collection takes up to about a second however many containers there
//! are — not a second per container, as `docker stats --no-stream` and
//! plain stats requests do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use bollard::query_parameters::{EventsOptions, ListContainersOptions, StatsOptions};
use futures::{StreamExt, TryStreamExt};
use limits::containers::memory_used;
use tokio::sync::OnceCell;

use crate::collector::{CollectError, Collector};
use crate::model::{Family, Unit};

/// The states `docker ps` knows, always reported (0 when none).
pub const STATES: [&str; 7] = [
    "running",
    "created",
    "exited",
    "paused",
    "restarting",
    "dead",
    "removing",
];

/// Collects from the local Docker Engine (`DOCKER_HOST` or the default
/// socket), negotiating the API version with it.
#[derive(Debug)]
pub struct DockerCollector {
    docker: OnceCell<Docker>,
    concurrency: usize,
    previous: Mutex<HashMap<String, (u64, Instant)>>,
    /// OOM kills per container id, counted from the engine's `oom` events
    /// since the first collection.
    oom_kills: Arc<Mutex<HashMap<String, u64>>>,
    watcher: OnceCell<tokio::task::JoinHandle<()>>,
}

impl Drop for DockerCollector {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.get() {
            w.abort();
        }
    }
}

/// Counts the engine's `oom` events per container until aborted,
/// resubscribing (after a pause) when the event stream ends or fails.
async fn watch_oom(docker: Docker, counts: Arc<Mutex<HashMap<String, u64>>>) {
    loop {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["oom".to_owned()]),
        ]);
        let mut events = Box::pin(docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        })));
        while let Ok(Some(event)) = events.try_next().await {
            if let Some(id) = event.actor.and_then(|a| a.id) {
                *counts
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(id)
                    .or_default() += 1;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

impl Default for DockerCollector {
    fn default() -> Self {
        DockerCollector::new(DEFAULT_CONCURRENCY)
    }
}

/// Stats requests in flight at once by default. The engine answers a
/// one-shot stats request at its stats collector's next tick (once a
/// second on Docker 20.10), so requests sent together are answered
/// together: a collection takes about one tick when every running
/// container fits in one wave, a tick per wave otherwise.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// What one running container reports, in base units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerStats {
    /// Memory in use, as `docker stats` computes it.
    pub memory_used: Option<u64>,
    /// The container's own memory limit; `None` without one.
    pub memory_limit: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_ns: Option<u64>,
    /// CPUs the container may use: its limit, else the host's online CPUs.
    pub cpus: Option<f64>,
    /// Bytes received and sent over all its networks.
    pub network: (u64, u64),
    /// Bytes read and written on block devices.
    pub block: (u64, u64),
}

impl ContainerStats {
    /// Reads a stats answer and the container's limits.
    pub fn from_api(
        stats: &ContainerStatsResponse,
        inspect: Option<&ContainerInspectResponse>,
    ) -> Self {
        let host = inspect.and_then(|i| i.host_config.as_ref());
        let memory_limit = host
            .and_then(|h| h.memory)
            .filter(|m| *m > 0)
            .map(|m| m as u64);
        let limit_cpus = host.and_then(|h| {
            h.nano_cpus
                .filter(|n| *n > 0)
                .map(|n| n as f64 / 1e9)
                .or_else(|| match (h.cpu_quota, h.cpu_period) {
                    (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
                    (Some(q), _) if q > 0 => Some(q as f64 / 100_000.0),
                    _ => None,
                })
        });
        let cpu = stats.cpu_stats.as_ref();
        let online = cpu
            .and_then(|c| c.online_cpus)
            .filter(|n| *n > 0)
            .map(f64::from);
        let network =
            stats
                .networks
                .iter()
                .flat_map(|n| n.values())
                .fold((0u64, 0u64), |(rx, tx), n| {
                    (
                        rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                        tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                    )
                });
        let block = stats
            .blkio_stats
            .as_ref()
            .and_then(|b| b.io_service_bytes_recursive.as_ref())
            .into_iter()
            .flatten()
            .fold((0u64, 0u64), |(r, w), e| {
                let v = e.value.unwrap_or(0);
                match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("read") => (r.saturating_add(v), w),
                    Some("write") => (r, w.saturating_add(v)),
                    _ => (r, w),
                }
            });
        ContainerStats {
            memory_used: stats.memory_stats.as_ref().and_then(memory_used),
            memory_limit,
            cpu_ns: cpu
                .and_then(|c| c.cpu_usage.as_ref())
                .and_then(|u| u.total_usage),
            cpus: limit_cpus.or(online),
            network,
            block,
        }
    }
}

impl DockerCollector {
    /// A collector making at most `concurrency` stats requests at once.
    pub fn new(concurrency: usize) -> Self {
        DockerCollector {
            docker: OnceCell::new(),
            concurrency: concurrency.max(1),
            previous: Mutex::new(HashMap::new()),
            oom_kills: Arc::new(Mutex::new(HashMap::new())),
            watcher: OnceCell::new(),
        }
    }

    async fn docker(&self) -> Result<&Docker, CollectError> {
        self.docker
            .get_or_try_init(|| async {
                let docker = Docker::connect_with_local_defaults()
                    .map_err(|e| CollectError::new(format!("Docker Engine: {e}")))?;
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| CollectError::new(format!("Docker Engine: {e}")))
            })
            .await
    }
}

#[async_trait]
impl Collector for DockerCollector {
    fn name(&self) -> &str {
        "docker"
    }

    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        let docker = self.docker().await?;
        self.watcher
            .get_or_init(|| async {
                tokio::spawn(watch_oom(docker.clone(), Arc::clone(&self.oom_kills)))
            })
            .await;
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(|e| CollectError::new(format!("listing containers: {e}")))?;

        let mut counts: HashMap<String, u64> =
            STATES.iter().map(|s| ((*s).to_owned(), 0)).collect();
        for c in &containers {
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            *counts.entry(state).or_default() += 1;
        }
        let mut by_state = Family::gauge("shipshape_containers", "Containers by state.");
        let mut states: Vec<_> = counts.into_iter().filter(|(s, _)| !s.is_empty()).collect();
        states.sort();
        for (state, n) in &states {
            by_state.push(&[("state", state)], *n as f64);
        }

        let running: Vec<_> = containers
            .iter()
            .filter(|c| c.state.map(|s| s.to_string()).as_deref() == Some("running"))
            .filter_map(|c| {
                let id = c.id.clone()?;
                let name = c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_else(|| id.chars().take(12).collect());
                let labels = c.labels.clone().unwrap_or_default();
                Some((id, name, c.image.clone().unwrap_or_default(), labels))
            })
            .collect();

        let fetched: Vec<_> = futures::stream::iter(running)
            .map(|(id, name, image, labels)| async move {
                let stats = async {
                    let options = StatsOptions {
                        stream: false,
                        one_shot: true,
                    };
                    Box::pin(docker.stats(&id, Some(options))).try_next().await
                };
                let inspect = docker.inspect_container(&id, None);
                let (stats, inspect) = futures::join!(stats, inspect);
                (id, name, image, labels, stats, inspect, Instant::now())
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let mut f = Families::new();
        let oom_kills = self
            .oom_kills
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = HashMap::new();
        for (id, name, image, labels, stats, inspect, at) in fetched {
            // A container that stopped between the list and its stats.
            let Ok(Some(stats)) = stats else {
                continue;
            };
            let inspect = inspect.ok();
            let s = ContainerStats::from_api(&stats, inspect.as_ref());
            let project = labels
                .get("com.docker.compose.project")
                .cloned()
                .unwrap_or_default();
            let service = labels
                .get("com.docker.compose.service")
                .cloned()
                .unwrap_or_default();
            let l = [
                ("name", name.as_str()),
                ("image", image.as_str()),
                ("compose_project", project.as_str()),
                ("compose_service", service.as_str()),
            ];
            if let Some(used) = s.memory_used {
                f.memory_used.push(&l, used as f64);
                if let Some(limit) = s.memory_limit {
                    f.memory_limit.push(&l, limit as f64);
                    f.memory_ratio.push(&l, used as f64 / limit as f64);
                }
            }
            if let Some(ns) = s.cpu_ns {
                f.cpu.push(&l, ns as f64 / 1e9);
                if let (Some((before, then)), Some(cpus)) = (previous.get(&id), s.cpus) {
                    let wall = at.duration_since(*then).as_nanos() as f64;
                    if wall > 0.0 && ns >= *before {
                        f.cpu_ratio.push(&l, (ns - before) as f64 / wall / cpus);
                    }
                }
                seen.insert(id.clone(), (ns, at));
            }
            f.oom_kills
                .push(&l, oom_kills.get(&id).copied().unwrap_or(0) as f64);
            f.rx.push(&l, s.network.0 as f64);
            f.tx.push(&l, s.network.1 as f64);
            f.read.push(&l, s.block.0 as f64);
            f.write.push(&l, s.block.1 as f64);
            if let Some(i) = &inspect {
                f.restarts.push(&l, i.restart_count.unwrap_or(0) as f64);
                let state = i.state.as_ref();
                f.oom.push(
                    &l,
                    f64::from(u8::from(state.and_then(|s| s.oom_killed).unwrap_or(false))),
                );
                let health = state
                    .and_then(|s| s.health.as_ref())
                    .and_then(|h| h.status)
                    .map(|s| s.to_string());
                match health.as_deref() {
                    Some("healthy") => f.healthy.push(&l, 1.0),
                    Some("unhealthy") | Some("starting") => f.healthy.push(&l, 0.0),
                    _ => {}
                }
            }
        }
        *previous = seen;
        let mut out = vec![by_state];
        out.extend(f.into_vec());
        Ok(out)
    }
}

struct Families {
    memory_used: Family,
    memory_limit: Family,
    memory_ratio: Family,
    cpu: Family,
    cpu_ratio: Family,
    rx: Family,
    tx: Family,
    read: Family,
    write: Family,
    restarts: Family,
    oom: Family,
    oom_kills: Family,
    healthy: Family,
}

impl Families {
    fn new() -> Self {
        Families {
            memory_used: Family::gauge(
                "shipshape_container_memory_used",
                "Memory in use as docker stats computes it (usage minus inactive file pages).",
            )
            .with_unit(Unit::Bytes),
            memory_limit: Family::gauge(
                "shipshape_container_memory_limit",
                "The container's own memory limit (absent without one).",
            )
            .with_unit(Unit::Bytes),
            memory_ratio: Family::gauge(
                "shipshape_container_memory_used",
                "Memory in use as a share of the container's own limit (absent without one).",
            )
            .with_unit(Unit::Ratio),
            cpu: Family::counter("shipshape_container_cpu", "CPU time used by the container.")
                .with_unit(Unit::Seconds),
            cpu_ratio: Family::gauge(
                "shipshape_container_cpu_used",
                "CPU used since the previous scrape, as a share of the CPUs the container may use.",
            )
            .with_unit(Unit::Ratio),
            rx: Family::counter("shipshape_container_network_receive", "Bytes received.")
                .with_unit(Unit::Bytes),
            tx: Family::counter("shipshape_container_network_transmit", "Bytes sent.")
                .with_unit(Unit::Bytes),
            read: Family::counter(
                "shipshape_container_block_read",
                "Bytes read from block devices.",
            )
            .with_unit(Unit::Bytes),
            write: Family::counter(
                "shipshape_container_block_written",
                "Bytes written to block devices.",
            )
            .with_unit(Unit::Bytes),
            restarts: Family::counter(
                "shipshape_container_restarts",
                "Times the engine restarted the container.",
            ),
            oom: Family::gauge(
                "shipshape_container_oom_killed",
                "Whether the container's last exit was an OOM kill.",
            ),
            oom_kills: Family::counter(
                "shipshape_container_oom_kills",
                "OOM kills in the container (the engine's oom events) since metricsd started.",
            ),
            healthy: Family::gauge(
                "shipshape_container_healthy",
                "Health check status: 1 healthy, 0 unhealthy or starting (absent without a health check).",
            ),
        }
    }

    fn into_vec(self) -> Vec<Family> {
        vec![
            self.memory_used,
            self.memory_limit,
            self.memory_ratio,
            self.cpu,
            self.cpu_ratio,
            self.rx,
            self.tx,
            self.read,
            self.write,
            self.restarts,
            self.oom,
            self.oom_kills,
            self.healthy,
        ]
    }
}
