//! A directory backup's index is read back from the store (decrypted, then
//! parsed line by line) before `ls` and partial restores: any bytes as a
//! decompressed index, planned for a few paths. Never a panic; what does
//! not parse, or lists entries out of order, is an error naming the index.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let include = ["a".to_owned(), "d/e".to_owned(), ".".to_owned()];
    if let Ok(spans) = backup_core::index::plan(&mut &data[..], &include) {
        for s in spans {
            assert!(s.start <= s.end && s.frame_start <= s.start, "{s:?}");
        }
    }
});
