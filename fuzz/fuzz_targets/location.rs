//! `s3://BUCKET/PREFIX` locations from the command line: never a panic, and
//! whatever parses prints back to something that parses the same.
#![no_main]

use backup_core::S3Location;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(location) = text.parse::<S3Location>() {
        let again: S3Location = location
            .to_string()
            .parse()
            .expect("a printed location parses");
        assert_eq!(again, location);
    }
});
