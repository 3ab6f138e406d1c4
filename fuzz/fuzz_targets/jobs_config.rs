//! The jobs config file, cron schedules and retention counts: never a
//! panic, and a schedule that parses always finds its next runs in order.
#![no_main]

use std::path::Path;

use backup_core::jobs::Config;
use backup_core::retention::Keep;
use backup_core::jobs::schedule::Schedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Relative paths resolve under a directory that does not exist, so the
    // fuzzer does not read this machine's files through them.
    let _ = Config::parse(text, "fuzz.toml", Path::new("/nonexistent-fuzz"));
    let _ = text.parse::<Keep>();
    let (expr, zone) = text.split_once('|').unwrap_or((text, "America/Chicago"));
    if let Ok(schedule) = Schedule::parse(expr, zone) {
        let after = "2026-11-01T00:00:00Z".parse().expect("time");
        let mut last = after;
        for t in schedule.upcoming(after).take(3) {
            let t = t.with_timezone(&chrono::Utc);
            assert!(t > last, "{expr} in {zone}: {t} after {last}");
            last = t;
        }
    }
});
