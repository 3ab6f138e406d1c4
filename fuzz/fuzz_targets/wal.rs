//! What point-in-time recovery reads from outside: WAL file names as
//! PostgreSQL's %f gives them and as store listings hold them, timeline
//! history files, the records stored beside archived WAL, recovery
//! targets, and pg_basebackup's tar stream (its label and manifest read as
//! the stream passes, in pieces of any size). Errors, never a panic.
#![no_main]

use backup_core::postgres::{RecoveryTarget, base_backup_range};
use backup_core::wal::{StreamReport, WalName, WalRecord, parse_history};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let piece = usize::from(data.first().copied().unwrap_or(1)) * 7 + 1;
    if let Ok((start_tli, start, end_tli, end)) = base_backup_range(data, piece) {
        let _ = (start_tli, end_tli, start.to_string(), end.to_string());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines().take(16) {
        if let Ok(name) = WalName::parse(line) {
            let _ = (name.kind(), name.timeline(), name.segment(16 << 20), name.segment(1));
            assert_eq!(WalName::from_record_key(&name.record_key()), Some(name.clone()));
        }
        let _ = WalName::from_record_key(line);
        let _ = line.parse::<RecoveryTarget>();
    }
    let _ = parse_history(text);
    let _ = serde_json::from_str::<WalRecord>(text);
    let _ = serde_json::from_str::<StreamReport>(text);
});
