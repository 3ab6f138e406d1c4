//! The host collector's procfs parsers on arbitrary text: never a panic,
//! and what they return is consistent with the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metrics_core::collectors::host::parse;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse::meminfo(&text);
    if let Some(stat) = parse::stat(&text) {
        assert!(stat.cpus <= text.lines().count());
    }
    let _ = parse::loadavg(&text);
    if let Some(up) = parse::uptime(&text) {
        assert!(up.is_finite());
    }
    for dev in parse::net_dev(&text) {
        assert!(text.contains(dev.name.as_str()));
    }
    for m in parse::mounts(&text) {
        assert!(m.mountpoint.len() <= text.len());
    }
});
