//! Records files and provider configs (TOML from users): never a panic.
//! A records file that parses plans nothing but ownership markers
//! against a zone that already holds exactly its records, and its
//! values are canonical (canonicalizing again changes nothing).
#![no_main]

use dns::RecordType;
use dns::plan::plan;
use dns::provider::ProviderConfig;
use dns::record::canonical_value;
use dns::records::RecordsFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (records, config) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    if let Some(text) = config.and_then(|c| std::str::from_utf8(c).ok()) {
        let _ = ProviderConfig::parse(text);
    }
    let Ok(text) = std::str::from_utf8(records) else {
        return;
    };
    // Values as providers' APIs send them (PowerDNS content, Cloudflare
    // content), whatever the type.
    for rtype in RecordType::ALL {
        let _ = canonical_value(rtype, text, None);
        let _ = canonical_value(rtype, text, Some("example.test."));
    }
    let Ok(file) = RecordsFile::parse(text) else {
        return;
    };
    let p = plan(&file, &file.records);
    assert!(p.changes.is_empty(), "{p:?}");
    for set in &file.records {
        if set.rtype == RecordType::TXT {
            continue;
        }
        for value in &set.values {
            assert_eq!(canonical_value(set.rtype, value, None).ok().as_ref(), Some(value));
        }
    }
});
