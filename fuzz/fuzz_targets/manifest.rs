//! Manifests and lock objects are read from the store, which anyone with
//! write access to it can change: parsing must never panic, and what
//! parses must round-trip.
#![no_main]

use backup_core::Manifest;
use backup_core::lock::LockInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        let again = Manifest::from_json(&m.to_json()).expect("a parsed manifest re-parses");
        assert_eq!(m, again);
    }
    if let Ok(lock) = LockInfo::parse(data) {
        let json = serde_json::to_vec(&lock).expect("a lock serializes");
        assert_eq!(LockInfo::parse(&json).expect("a parsed lock re-parses"), lock);
    }
});
