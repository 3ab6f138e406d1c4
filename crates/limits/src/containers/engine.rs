//! The Docker Engine side: reading containers' limits and usage, and
//! updating them live.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerMemoryStats, ContainerUpdateBody};
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures::TryStreamExt;
use serde::Serialize;

use super::{Change, Current, Error, Limits, Rule, Setting, diff};

/// Memory in use as `docker stats` computes it: usage minus inactive file
/// pages (`total_inactive_file` on cgroup v1, `inactive_file` on v2), the
/// latter only when smaller than usage.
pub fn memory_used(mem: &ContainerMemoryStats) -> Option<u64> {
    let usage = mem.usage?;
    let stats = mem.stats.as_ref();
    let inactive = stats
        .and_then(|s| s.get("total_inactive_file"))
        .or_else(|| stats.and_then(|s| s.get("inactive_file")))
        .copied()
        .unwrap_or(0);
    Some(if inactive < usage {
        usage - inactive
    } else {
        usage
    })
}

/// A connection to the Docker Engine (`DOCKER_HOST` or the default
/// socket), API version negotiated.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

/// What `apply` did to one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The container.
    pub container: String,
    /// The changes it sent.
    pub applied: Vec<Change>,
    /// Differences still there when re-read afterwards (empty: confirmed).
    pub remaining: Vec<Change>,
}

fn engine_error(operation: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Error {
    let operation = operation.into();
    move |e| Error::Engine {
        operation,
        message: e.to_string(),
    }
}

impl Engine {
    /// Connects and negotiates the API version.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when the engine cannot be reached.
    pub async fn connect() -> Result<Self, Error> {
        let docker = Docker::connect_with_local_defaults().map_err(engine_error("connect"))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(engine_error("negotiate the API version"))?;
        Ok(Engine { docker })
    }

    /// The underlying client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Every container the rules pick, with what it has and what it should
    /// have (rules merged in order), sorted by name.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when containers cannot be listed or inspected.
    pub async fn desired(&self, rules: &[Rule]) -> Result<Vec<(Current, Limits)>, Error> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(engine_error("list containers"))?;
        let mut out = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            let labels: HashMap<String, String> = c.labels.unwrap_or_default();
            let desired = rules
                .iter()
                .filter(|r| r.matches(&name, &labels))
                .fold(None, |acc: Option<Limits>, r| {
                    Some(acc.unwrap_or_default().merge(r.limits))
                });
            if let Some(desired) = desired {
                out.push((self.current(&id).await?, desired));
            }
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }

    /// What a container has now.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when the container cannot be inspected.
    pub async fn current(&self, id: &str) -> Result<Current, Error> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(engine_error(format!("inspect {id}")))?;
        let h = inspect.host_config.unwrap_or_default();
        let running = inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        let memory_used = if running {
            self.docker
                .stats(
                    id,
                    Some(StatsOptions {
                        stream: false,
                        one_shot: true,
                    }),
                )
                .try_next()
                .await
                .ok()
                .flatten()
                .and_then(|s| s.memory_stats)
                .as_ref()
                .and_then(memory_used)
        } else {
            None
        };
        Ok(Current {
            name: inspect
                .name
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.to_owned()),
            id: inspect.id.unwrap_or_else(|| id.to_owned()),
            memory: h.memory.unwrap_or(0),
            memory_reservation: h.memory_reservation.unwrap_or(0),
            memory_swap: h.memory_swap.unwrap_or(0),
            nano_cpus: h.nano_cpus.unwrap_or(0),
            cpu_quota: h.cpu_quota.unwrap_or(0),
            cpu_period: h.cpu_period.unwrap_or(0),
            pids: h.pids_limit.unwrap_or(0),
            memory_used,
        })
    }

    /// The differences between what containers have and what the rules
    /// want.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when containers cannot be listed or inspected.
    pub async fn plan(&self, rules: &[Rule]) -> Result<Vec<Change>, Error> {
        Ok(self
            .desired(rules)
            .await?
            .iter()
            .flat_map(|(c, want)| diff(c, want))
            .collect())
    }

    /// Applies the rules: refuses (changing nothing) when a memory limit
    /// would fall below a running container's current usage unless
    /// `force`; sends one update per container with its settings ordered
    /// so the engine accepts them; re-reads every updated container.
    ///
    /// # Errors
    ///
    /// [`Error::BelowUsage`] without `force`; [`Error::Engine`] when the
    /// engine refuses an update.
    pub async fn apply(&self, rules: &[Rule], force: bool) -> Result<Vec<Outcome>, Error> {
        let targets = self.desired(rules).await?;
        if !force {
            for (c, want) in &targets {
                if let (Some(limit), Some(used)) = (want.memory, c.memory_used) {
                    if limit > 0 && (limit as u64) < used && c.memory != limit {
                        return Err(Error::BelowUsage {
                            container: c.name.clone(),
                            limit: limit as u64,
                            usage: used,
                        });
                    }
                }
            }
        }
        let mut outcomes = Vec::new();
        for (c, want) in targets {
            let changes = diff(&c, &want);
            if changes.is_empty() {
                continue;
            }
            let body = update_body(&c, &want, &changes);
            self.docker
                .update_container(&c.id, body)
                .await
                .map_err(engine_error(format!("update {}", c.name)))?;
            let after = self.current(&c.id).await?;
            outcomes.push(Outcome {
                container: c.name.clone(),
                remaining: diff(&after, &want),
                applied: changes,
            });
        }
        Ok(outcomes)
    }
}

/// The memory+swap total to send with a new memory limit when the rules
/// leave swap alone (the engine refuses a memory limit without one on a
/// container that had no limit, and one above the current total): the
/// swap the container had is kept; without a limit before, the engine's
/// default for `--memory` alone (total twice memory); unlimited stays
/// unlimited.
fn swap_for(c: &Current, memory: i64) -> i64 {
    match c.memory_swap {
        -1 => -1,
        total if total > 0 && c.memory > 0 => memory.saturating_add(total - c.memory),
        _ => memory.saturating_mul(2),
    }
}

/// One update with every change, in the forms the engine accepts:
/// memory and memory+swap together (see `swap_for`), and
/// CPUs as quota/period when the container's CPU limit was set that way
/// (the engine refuses NanoCpus beside a quota).
pub fn update_body(c: &Current, want: &Limits, changes: &[Change]) -> ContainerUpdateBody {
    let mut body = ContainerUpdateBody::default();
    for change in changes {
        match change.setting {
            Setting::Memory => {
                body.memory = Some(change.desired);
                if want.memory_swap.is_none() {
                    body.memory_swap = Some(swap_for(c, change.desired));
                }
            }
            Setting::MemorySwap => {
                body.memory_swap = Some(change.desired);
                // The engine needs the memory limit beside a swap limit.
                if body.memory.is_none() {
                    body.memory = Some(want.memory.unwrap_or(c.memory));
                }
            }
            Setting::MemoryReservation => body.memory_reservation = Some(change.desired),
            Setting::Cpus => {
                if c.cpu_quota > 0 && c.nano_cpus == 0 {
                    let period = if c.cpu_period > 0 {
                        c.cpu_period
                    } else {
                        100_000
                    };
                    body.cpu_period = Some(period);
                    body.cpu_quota = Some(change.desired * period / 1_000_000_000);
                } else {
                    body.nano_cpus = Some(change.desired);
                }
            }
            Setting::Pids => body.pids_limit = Some(change.desired),
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_shaped_for_the_engine() {
        let c = Current {
            name: "a".into(),
            memory: 256 << 20,
            memory_swap: 512 << 20,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            ..Current::default()
        };
        let want = Limits {
            memory: Some(1 << 30),
            nano_cpus: Some(1_500_000_000),
            ..Limits::default()
        };
        let body = update_body(&c, &want, &diff(&c, &want));
        assert_eq!(body.memory, Some(1 << 30));
        assert_eq!(
            body.memory_swap,
            Some((1 << 30) + (256 << 20)),
            "the swap it had is kept"
        );
        assert_eq!(body.nano_cpus, None);
        assert_eq!(body.cpu_quota, Some(150_000));
        assert_eq!(body.cpu_period, Some(100_000));
    }
}
