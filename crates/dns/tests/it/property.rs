//! Round trips and robustness on arbitrary input.

use dns::RecordType;
use dns::record::{canonical_value, txt_presentation};
use dns::records::RecordsFile;
use dns::wire::classify;
use proptest::prelude::*;

proptest! {
    /// Any TXT value survives being written as zone-file text (quoted,
    /// escaped, cut into 255-byte strings) and read back.
    #[test]
    fn txt_values_survive_presentation(value in "\\PC{0,700}") {
        let back = canonical_value(RecordType::TXT, &txt_presentation(&value), None);
        prop_assert_eq!(back.ok(), Some(value));
    }

    /// Canonical values are fixed points: canonicalizing again changes
    /// nothing (so plans compare like with like).
    #[test]
    fn canonical_values_are_stable(
        a in any::<[u8; 4]>(),
        v6 in any::<[u16; 8]>(),
        pref in any::<u16>(),
        host in "[a-z][a-z0-9-]{0,20}",
    ) {
        let zone = Some("example.test.");
        let cases = [
            (RecordType::A, format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])),
            (RecordType::AAAA, std::net::Ipv6Addr::from(v6).to_string().to_uppercase()),
            (RecordType::MX, format!("{pref} {host}")),
            (RecordType::CNAME, host.to_uppercase()),
            (RecordType::SRV, format!("1 2 {pref} {host}")),
        ];
        for (rtype, text) in cases {
            let once = canonical_value(rtype, &text, zone).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let twice = canonical_value(rtype, &once, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(once, twice);
        }
    }

    /// The classifier takes anything a network sends: an error or an
    /// answer, never a panic.
    #[test]
    fn classify_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), id in any::<u16>()) {
        let _ = classify(&bytes, id, "www.example.test.", RecordType::A);
    }

    /// So does the records file parser.
    #[test]
    fn records_parser_takes_any_text(text in "\\PC{0,300}") {
        let _ = RecordsFile::parse(&text);
    }
}
