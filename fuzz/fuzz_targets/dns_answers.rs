//! DNS responses, whatever a server (or anything on the path) sends, fed
//! to the classifier: an error or an answer, never a panic; an answer
//! that says NOERROR always carries values, and only it or a referral
//! (a delegation's NS records) does.
#![no_main]

use dns::RecordType;
use dns::wire::{Status, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The message id the query used is the response's own first two
    // bytes, so the fuzzer reaches past the id check.
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    for (name, rtype) in [
        ("www.example.test.", RecordType::A),
        ("example.test.", RecordType::MX),
        ("a.", RecordType::TXT),
        ("_sip._tcp.example.test.", RecordType::SRV),
        ("example.test.", RecordType::CAA),
        ("example.test.", RecordType::TXT),
        ("sub.example.test.", RecordType::NS),
        ("ns1.k1.test.", RecordType::A),
        ("nope.k1.test.", RecordType::A),
        ("ns1.k1.test.", RecordType::MX),
        ("k1.test.", RecordType::NS),
    ] {
        if let Ok(answer) = classify(data, id, name, rtype) {
            if answer.status == Status::NoError {
                assert!(!answer.values.is_empty());
            }
            if !answer.values.is_empty() {
                assert!(matches!(answer.status, Status::NoError | Status::Referral));
            }
            let _ = serde_json::to_string(&answer);
        }
    }
});
