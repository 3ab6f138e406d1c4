//! Container limits declared once — a policy file, or a compose file's
//! `deploy.resources` — planned as a diff against the running containers,
//! applied live through the Docker Engine's update API, re-read and
//! confirmed, and checked for drift.
//!
//! ```toml
//! [[container]]
//! name = "chat"                 # or: label = "tier=batch", service = "n8n"
//! memory = "512m"
//! memory_reservation = "256m"
//! memory_swap = "1g"            # memory + swap, as docker; "-1" = unlimited
//! cpus = 1.5
//! pids = 256
//! ```

mod engine;
mod policy;

use std::fmt;

use serde::Serialize;

pub use engine::{Engine, Outcome, memory_used, update_body};
pub use policy::{Rule, Selector, parse_compose, parse_policy, parse_size};

/// Why limits could not be read, planned or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The policy or compose file is wrong; the message says where.
    #[error("{file}: {problem}")]
    Policy {
        /// The file.
        file: String,
        /// What is wrong.
        problem: String,
    },
    /// The Docker Engine refused or could not be reached.
    #[error("Docker Engine: {operation}: {message}")]
    Engine {
        /// What was being done.
        operation: String,
        /// The engine's answer.
        message: String,
    },
    /// A memory limit below what the container uses now.
    #[error(
        "{container}: memory limit {limit} is below its current usage {usage}; the kernel would \
         OOM-kill it (raise the limit, or apply it with force)"
    )]
    BelowUsage {
        /// The container.
        container: String,
        /// The declared limit, bytes.
        limit: u64,
        /// Memory in use now, bytes.
        usage: u64,
    },
}

/// The limits a container should have (unset: not managed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Memory limit, bytes.
    pub memory: Option<i64>,
    /// Soft limit, bytes.
    pub memory_reservation: Option<i64>,
    /// Memory plus swap, bytes; -1 unlimited.
    pub memory_swap: Option<i64>,
    /// CPUs, in billionths.
    pub nano_cpus: Option<i64>,
    /// Processes; -1 unlimited.
    pub pids: Option<i64>,
}

impl Limits {
    /// Later settings win: `other`'s set values over this one's.
    pub fn merge(self, other: Limits) -> Limits {
        Limits {
            memory: other.memory.or(self.memory),
            memory_reservation: other.memory_reservation.or(self.memory_reservation),
            memory_swap: other.memory_swap.or(self.memory_swap),
            nano_cpus: other.nano_cpus.or(self.nano_cpus),
            pids: other.pids.or(self.pids),
        }
    }
}

/// A setting's name as users write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// `memory`
    Memory,
    /// `memory_reservation`
    MemoryReservation,
    /// `memory_swap`
    MemorySwap,
    /// `cpus`
    Cpus,
    /// `pids`
    Pids,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Memory => "memory",
            Setting::MemoryReservation => "memory_reservation",
            Setting::MemorySwap => "memory_swap",
            Setting::Cpus => "cpus",
            Setting::Pids => "pids",
        })
    }
}

/// What a container has now, as the engine reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Current {
    /// The container's name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Memory limit (0: none).
    pub memory: i64,
    /// Soft limit (0: none).
    pub memory_reservation: i64,
    /// Memory plus swap (0: engine default, -1: unlimited).
    pub memory_swap: i64,
    /// NanoCpus (0: not set this way).
    pub nano_cpus: i64,
    /// CFS quota, microseconds (0: none).
    pub cpu_quota: i64,
    /// CFS period, microseconds (0: default 100000).
    pub cpu_period: i64,
    /// PIDs limit (0 or -1: none).
    pub pids: i64,
    /// Memory in use now (as `docker stats` computes it).
    pub memory_used: Option<u64>,
}

impl Current {
    /// The CPUs the container may use, in billionths, however they were
    /// set (NanoCpus or quota/period); 0 for no limit.
    pub fn effective_nano_cpus(&self) -> i64 {
        if self.nano_cpus > 0 {
            self.nano_cpus
        } else if self.cpu_quota > 0 {
            let period = if self.cpu_period > 0 {
                self.cpu_period
            } else {
                100_000
            };
            self.cpu_quota * 1_000_000_000 / period
        } else {
            0
        }
    }

    fn value(&self, setting: Setting) -> i64 {
        match setting {
            Setting::Memory => self.memory,
            Setting::MemoryReservation => self.memory_reservation,
            Setting::MemorySwap => self.memory_swap,
            Setting::Cpus => self.effective_nano_cpus(),
            Setting::Pids => match self.pids {
                0 => -1,
                p => p,
            },
        }
    }
}

/// One difference between what a container has and what it should have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The container's name.
    pub container: String,
    /// The setting.
    pub setting: Setting,
    /// What it has (engine units: bytes, NanoCpus, count; 0 or -1 for none).
    pub current: i64,
    /// What it should have.
    pub desired: i64,
}

impl Change {
    /// The current value for people (`512 MiB`, `1.5`, `none`).
    pub fn current_text(&self) -> String {
        show(self.setting, self.current)
    }

    /// The desired value for people.
    pub fn desired_text(&self) -> String {
        show(self.setting, self.desired)
    }
}

/// A value for people, in the setting's unit.
pub fn show(setting: Setting, v: i64) -> String {
    match setting {
        _ if v == -1 => "unlimited".to_owned(),
        _ if v == 0 => "none".to_owned(),
        Setting::Cpus => {
            let cpus = v as f64 / 1e9;
            format!("{}", (cpus * 1000.0).round() / 1000.0)
        }
        Setting::Pids => v.to_string(),
        _ => bytes(v),
    }
}

fn bytes(v: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut x = v as f64;
    let mut i = 0;
    while x >= 1024.0 && i < UNITS.len() - 1 && (x / 1024.0).fract() == 0.0 {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 && v >= 1024 * 1024 {
        return format!("{:.1} MiB", v as f64 / 1_048_576.0);
    }
    format!("{x} {}", UNITS[i])
}

/// The differences between `current` and `desired`, in setting order.
pub fn diff(current: &Current, desired: &Limits) -> Vec<Change> {
    let wanted = [
        (Setting::Memory, desired.memory),
        (Setting::MemoryReservation, desired.memory_reservation),
        (Setting::MemorySwap, desired.memory_swap),
        (Setting::Cpus, desired.nano_cpus),
        (Setting::Pids, desired.pids),
    ];
    wanted
        .into_iter()
        .filter_map(|(setting, want)| {
            let want = want?;
            let have = current.value(setting);
            (have != want).then(|| Change {
                container: current.name.clone(),
                setting,
                current: have,
                desired: want,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_compares_cpus_however_they_were_set() {
        let c = Current {
            name: "a".into(),
            cpu_quota: 150_000,
            cpu_period: 100_000,
            memory: 512 << 20,
            ..Current::default()
        };
        let want = Limits {
            nano_cpus: Some(1_500_000_000),
            memory: Some(512 << 20),
            pids: Some(100),
            ..Limits::default()
        };
        let d = diff(&c, &want);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].setting, Setting::Pids);
        assert_eq!(d[0].current_text(), "unlimited");
        assert_eq!(show(Setting::Memory, 512 << 20), "512 MiB");
        assert_eq!(show(Setting::Cpus, 1_500_000_000), "1.5");
    }
}
