//! metricsd's config file (the `[server]` table, rate-limit policies,
//! collectors, alert rules, webhooks): never a panic; a config that parses
//! evaluates its rules against a snapshot without one either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_core::{Evaluator, Family, Snapshot, Unit};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((_server, config)) = metricsd::parse(text) else {
        return;
    };
    let mut snapshot = Snapshot::default();
    let mut f = Family::gauge("shipshape_host_memory_used", "h").with_unit(Unit::Ratio);
    f.push(&[("a", "b")], 0.9);
    f.push(&[], f64::NAN);
    snapshot.extend([f]);
    let mut e = Evaluator::new(config.alert.clone());
    let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    for i in 0..3 {
        for n in e.evaluate(&snapshot, t0 + chrono::Duration::seconds(i * 60)) {
            let _ = n.to_json().to_string();
        }
    }
});
