//! Container limit policies (TOML), compose files (YAML) and sizes: never
//! a panic, and every rule that parses sets at least one limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use limits::containers::{Limits, parse_compose, parse_policy, parse_size};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for rules in [parse_policy(text, "fuzz.toml"), parse_compose(text, "fuzz.yaml")]
        .into_iter()
        .flatten()
    {
        for r in rules {
            assert_ne!(r.limits, Limits::default());
        }
    }
    if let Ok(n) = parse_size(text) {
        assert!(n == -1 || n > 0);
    }
});
