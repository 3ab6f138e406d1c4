//! Docker stats and inspect answers (JSON from the engine) through the
//! collector's arithmetic: never a panic, and memory in use never exceeds
//! the usage the engine reported.
#![no_main]

use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use libfuzzer_sys::fuzz_target;
use metrics_core::collectors::docker::ContainerStats;

fuzz_target!(|data: &[u8]| {
    let (stats, inspect) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(stats) = serde_json::from_slice::<ContainerStatsResponse>(stats) else {
        return;
    };
    let inspect = inspect.and_then(|b| serde_json::from_slice::<ContainerInspectResponse>(b).ok());
    let s = ContainerStats::from_api(&stats, inspect.as_ref());
    if let (Some(used), Some(usage)) = (
        s.memory_used,
        stats.memory_stats.as_ref().and_then(|m| m.usage),
    ) {
        assert!(used <= usage);
    }
    if let Some(cpus) = s.cpus {
        assert!(cpus.is_finite() && cpus > 0.0);
    }
});
