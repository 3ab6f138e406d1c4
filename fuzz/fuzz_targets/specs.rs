//! What users write everywhere: a source (`backupctl backup SOURCE`, a
//! job's `source`, the C ABI's `source`), keys (`[keys.NAME]`, the C ABI's
//! key fields), durations and sizes (every config file and flag). Never a
//! panic; a password in a URL never shows in an error; a duration or size
//! that parses formats back to itself.
#![no_main]

use backup_core::{KeySpec, SourceSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = text.parse::<SourceSpec>() {
        let shown = spec.to_string();
        let _ = (spec.kind(), spec.check_no_inline_secret());
        assert!(!shown.contains(":hunter2@"), "{shown}");
    }
    let _ = serde_json::from_str::<SourceSpec>(text);
    let _ = serde_json::from_str::<KeySpec>(text);
    if let Ok(d) = settings::duration::parse(text) {
        assert_eq!(settings::duration::parse(&settings::duration::format(d)), Ok(d));
    }
    if let Ok(n) = settings::size::parse(text) {
        assert_eq!(settings::size::parse(&settings::size::format(n)), Ok(n));
    }
});
