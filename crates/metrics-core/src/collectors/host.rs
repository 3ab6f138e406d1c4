//! The host: memory, swap, CPU time by mode, load, filesystems, network
//! bytes and uptime, from `/proc` and `statvfs`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::collector::{CollectError, Collector};
use crate::model::{Family, Unit};

/// File system types that hold no user data (pseudo and container layers),
/// as node_exporter leaves them out.
const IGNORED_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Mount points under these are the system's or a container engine's.
const IGNORED_MOUNT_PREFIXES: &[&str] = &[
    "/dev/",
    "/proc/",
    "/sys/",
    "/run/credentials/",
    "/var/lib/docker/",
    "/var/lib/containers/storage/",
];

/// Reads the host's state from `/proc` (or another procfs root, for an
/// agent in a container with the host's `/proc` mounted elsewhere).
#[derive(Debug, Clone)]
pub struct HostCollector {
    proc_root: PathBuf,
}

impl Default for HostCollector {
    fn default() -> Self {
        HostCollector::new("/proc")
    }
}

impl HostCollector {
    /// A collector reading procfs at `proc_root`.
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        HostCollector {
            proc_root: proc_root.into(),
        }
    }

    fn read(&self, name: &str) -> Result<String, CollectError> {
        let path = self.proc_root.join(name);
        std::fs::read_to_string(&path)
            .map_err(|e| CollectError::new(format!("cannot read {}: {e}", path.display())))
    }

    fn collect_blocking(&self) -> Result<Vec<Family>, CollectError> {
        let mut out = Vec::new();
        let meminfo = self.read("meminfo")?;
        let mem = parse::meminfo(&meminfo);
        let total = mem.get("MemTotal").copied().unwrap_or(0);
        let available = mem.get("MemAvailable").copied().unwrap_or(0);
        let swap_total = mem.get("SwapTotal").copied().unwrap_or(0);
        let swap_free = mem.get("SwapFree").copied().unwrap_or(0);
        let bytes = |name: &str, help: &str, v: u64| {
            Family::gauge(name, help)
                .with_unit(Unit::Bytes)
                .with_value(v as f64)
        };
        out.push(bytes(
            "shipshape_host_memory_total",
            "Physical memory (MemTotal).",
            total,
        ));
        out.push(bytes(
            "shipshape_host_memory_available",
            "Memory available for new work without swapping (MemAvailable).",
            available,
        ));
        out.push(
            Family::gauge(
                "shipshape_host_memory_used",
                "Share of physical memory not available: 1 - MemAvailable / MemTotal.",
            )
            .with_unit(Unit::Ratio)
            .with_value(used_ratio(total, available)),
        );
        out.push(bytes(
            "shipshape_host_swap_total",
            "Swap space (SwapTotal).",
            swap_total,
        ));
        out.push(bytes(
            "shipshape_host_swap_free",
            "Unused swap space (SwapFree).",
            swap_free,
        ));
        out.push(
            Family::gauge(
                "shipshape_host_swap_used",
                "Share of swap in use (0 without swap).",
            )
            .with_unit(Unit::Ratio)
            .with_value(used_ratio(swap_total, swap_free)),
        );

        let stat = parse::stat(&self.read("stat")?)
            .ok_or_else(|| CollectError::new("no `cpu` line in /proc/stat"))?;
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let mut cpu = Family::counter(
            "shipshape_host_cpu",
            "CPU time spent in each mode, summed over all CPUs.",
        )
        .with_unit(Unit::Seconds);
        for (mode, t) in parse::CPU_MODES.iter().zip(stat.cpu_ticks) {
            cpu.push(&[("mode", mode)], t as f64 / ticks);
        }
        out.push(cpu);
        out.push(
            Family::gauge("shipshape_host_cpus", "Number of CPUs the kernel reports.")
                .with_value(stat.cpus as f64),
        );

        let load = parse::loadavg(&self.read("loadavg")?)
            .ok_or_else(|| CollectError::new("unreadable /proc/loadavg"))?;
        for (name, help, v) in [
            (
                "shipshape_host_load1",
                "Load average over 1 minute.",
                load[0],
            ),
            (
                "shipshape_host_load5",
                "Load average over 5 minutes.",
                load[1],
            ),
            (
                "shipshape_host_load15",
                "Load average over 15 minutes.",
                load[2],
            ),
        ] {
            out.push(Family::gauge(name, help).with_value(v));
        }

        let uptime = parse::uptime(&self.read("uptime")?)
            .ok_or_else(|| CollectError::new("unreadable /proc/uptime"))?;
        out.push(
            Family::gauge("shipshape_host_uptime", "Time since boot.")
                .with_unit(Unit::Seconds)
                .with_value(uptime),
        );

        let mut rx = Family::counter(
            "shipshape_host_network_receive",
            "Bytes received per network interface.",
        )
        .with_unit(Unit::Bytes);
        let mut tx = Family::counter(
            "shipshape_host_network_transmit",
            "Bytes sent per network interface.",
        )
        .with_unit(Unit::Bytes);
        for dev in parse::net_dev(&self.read("net/dev")?) {
            rx.push(&[("device", &dev.name)], dev.rx_bytes as f64);
            tx.push(&[("device", &dev.name)], dev.tx_bytes as f64);
        }
        out.push(rx);
        out.push(tx);

        out.extend(self.filesystems()?);
        Ok(out)
    }

    fn filesystems(&self) -> Result<Vec<Family>, CollectError> {
        let mut size = Family::gauge("shipshape_host_filesystem_size", "File system size.")
            .with_unit(Unit::Bytes);
        let mut free = Family::gauge(
            "shipshape_host_filesystem_free",
            "Free space, including blocks reserved for root.",
        )
        .with_unit(Unit::Bytes);
        let mut avail = Family::gauge(
            "shipshape_host_filesystem_available",
            "Space available to unprivileged users.",
        )
        .with_unit(Unit::Bytes);
        let mut used = Family::gauge(
            "shipshape_host_filesystem_used",
            "Share of the space usable by unprivileged users that is used, as df computes it.",
        )
        .with_unit(Unit::Ratio);
        let mut seen = std::collections::HashSet::new();
        for m in parse::mounts(&self.read("mounts")?) {
            if IGNORED_FS_TYPES.contains(&m.fstype.as_str())
                || IGNORED_MOUNT_PREFIXES
                    .iter()
                    .any(|p| m.mountpoint.starts_with(p) || m.mountpoint == p.trim_end_matches('/'))
                || !seen.insert(m.mountpoint.clone())
            {
                continue;
            }
            let Ok(st) = rustix::fs::statvfs(Path::new(&m.mountpoint)) else {
                continue;
            };
            if st.f_blocks == 0 {
                continue;
            }
            let frsize = st.f_frsize;
            let total = st.f_blocks.saturating_mul(frsize);
            let free_b = st.f_bfree.saturating_mul(frsize);
            let avail_b = st.f_bavail.saturating_mul(frsize);
            let labels = [
                ("mountpoint", m.mountpoint.as_str()),
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
            ];
            size.push(&labels, total as f64);
            free.push(&labels, free_b as f64);
            avail.push(&labels, avail_b as f64);
            // df: used / (used + available), so reserved blocks count as full.
            let used_b = total.saturating_sub(free_b);
            let usable = used_b + avail_b;
            let ratio = if usable == 0 {
                0.0
            } else {
                used_b as f64 / usable as f64
            };
            used.push(&labels, ratio);
        }
        Ok(vec![size, free, avail, used])
    }
}

fn used_ratio(total: u64, free: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (1.0 - free as f64 / total as f64).clamp(0.0, 1.0)
    }
}

#[async_trait]
impl Collector for HostCollector {
    fn name(&self) -> &str {
        "host"
    }

    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.collect_blocking())
            .await
            .map_err(|e| CollectError::new(format!("host collector task failed: {e}")))?
    }
}

/// Parsers of the procfs files the host collector reads. Each takes the
/// file's text and never panics on malformed input.
pub mod parse {
    use std::collections::HashMap;

    /// The modes of the aggregate `cpu` line of `/proc/stat`, in order.
    pub const CPU_MODES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];

    /// `/proc/meminfo` as bytes by field name (`MemTotal` ...).
    pub fn meminfo(text: &str) -> HashMap<&str, u64> {
        text.lines()
            .filter_map(|line| {
                let (key, rest) = line.split_once(':')?;
                let mut parts = rest.split_whitespace();
                let value: u64 = parts.next()?.parse().ok()?;
                let scale = match parts.next() {
                    Some("kB") => 1024,
                    None => 1,
                    Some(_) => return None,
                };
                Some((key.trim(), value.saturating_mul(scale)))
            })
            .collect()
    }

    /// What the host collector needs from `/proc/stat`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Stat {
        /// Ticks per mode of [`CPU_MODES`] on the aggregate `cpu` line.
        pub cpu_ticks: [u64; 8],
        /// The number of `cpuN` lines.
        pub cpus: usize,
    }

    /// Parses `/proc/stat`; `None` without an aggregate `cpu` line.
    pub fn stat(text: &str) -> Option<Stat> {
        let mut cpu_ticks = None;
        let mut cpus = 0;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            match parts.next() {
                Some("cpu") => {
                    let mut ticks = [0u64; 8];
                    for (slot, v) in ticks.iter_mut().zip(parts) {
                        *slot = v.parse().ok()?;
                    }
                    cpu_ticks = Some(ticks);
                }
                Some(name) if name.starts_with("cpu") => cpus += 1,
                _ => {}
            }
        }
        Some(Stat {
            cpu_ticks: cpu_ticks?,
            cpus,
        })
    }

    /// The three load averages of `/proc/loadavg`.
    pub fn loadavg(text: &str) -> Option<[f64; 3]> {
        let mut parts = text.split_whitespace().map(|p| p.parse::<f64>().ok());
        Some([parts.next()??, parts.next()??, parts.next()??])
    }

    /// Seconds since boot, from `/proc/uptime`.
    pub fn uptime(text: &str) -> Option<f64> {
        text.split_whitespace()
            .next()?
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
    }

    /// One interface of `/proc/net/dev`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NetDev {
        /// Interface name.
        pub name: String,
        /// Bytes received.
        pub rx_bytes: u64,
        /// Bytes sent.
        pub tx_bytes: u64,
    }

    /// The interfaces of `/proc/net/dev` (the two header lines skipped).
    pub fn net_dev(text: &str) -> Vec<NetDev> {
        text.lines()
            .filter_map(|line| {
                let (name, rest) = line.split_once(':')?;
                let fields: Vec<u64> = rest
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .ok()?;
                Some(NetDev {
                    name: name.trim().to_owned(),
                    rx_bytes: *fields.first()?,
                    tx_bytes: *fields.get(8)?,
                })
            })
            .collect()
    }

    /// One line of `/proc/mounts`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Mount {
        /// The device (or pseudo device) mounted.
        pub device: String,
        /// Where, with the kernel's octal escapes (`\040` for a space)
        /// decoded.
        pub mountpoint: String,
        /// File system type.
        pub fstype: String,
    }

    /// The mounts of `/proc/mounts`.
    pub fn mounts(text: &str) -> Vec<Mount> {
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                Some(Mount {
                    device: unescape(parts.next()?),
                    mountpoint: unescape(parts.next()?),
                    fstype: parts.next()?.to_owned(),
                })
            })
            .collect()
    }

    /// Decodes the `\ooo` octal escapes the kernel writes for space, tab,
    /// newline and backslash.
    fn unescape(field: &str) -> String {
        let bytes = field.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let octal = bytes.get(i + 1..i + 4).and_then(|d| {
                let s = std::str::from_utf8(d).ok()?;
                u8::from_str_radix(s, 8).ok()
            });
            match (bytes[i], octal) {
                (b'\\', Some(b)) => {
                    out.push(b);
                    i += 4;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_what_the_kernel_writes() {
            let m = meminfo(
                "MemTotal:       24684092 kB\nMemAvailable:   23263624 kB\nHugePages_Total:       0\n",
            );
            assert_eq!(m["MemTotal"], 24_684_092 * 1024);
            assert_eq!(m["HugePages_Total"], 0);
            let s = stat(
                "cpu  19144 19219 6139 180399 309 0 49 66 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 1\n",
            );
            assert_eq!(
                s,
                Some(Stat {
                    cpu_ticks: [19144, 19219, 6139, 180399, 309, 0, 49, 66],
                    cpus: 2
                })
            );
            assert_eq!(
                loadavg("2.16 1.27 0.52 3/115 24231\n"),
                Some([2.16, 1.27, 0.52])
            );
            assert_eq!(uptime("1130.87 1803.99\n"), Some(1130.87));
            let n = net_dev(
                "Inter-|   Receive\n face |bytes\n    lo:    3193      29    0    0    0     0          0         0     3194      29    0    0    0     0       0          0\n",
            );
            assert_eq!(
                n,
                vec![NetDev {
                    name: "lo".into(),
                    rx_bytes: 3193,
                    tx_bytes: 3194
                }]
            );
            let m = mounts("/dev/sda1 /mnt/my\\040disk ext4 rw 0 0\n");
            assert_eq!(m[0].mountpoint, "/mnt/my disk");
            assert_eq!(m[0].fstype, "ext4");
        }
    }
}
