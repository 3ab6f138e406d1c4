//! Identity files and recipient strings come from users' files and flags.
#![no_main]

use backup_core::{Identities, Recipients};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Identities::parse(text);
        let _ = Recipients::parse(text.split_whitespace());
    }
});
