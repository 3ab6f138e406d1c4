//! Anyone holding the public key can make a validly encrypted object, so the
//! archive inside must be treated as hostile: arbitrary bytes as the tar
//! stream (properly compressed and encrypted) are extracted into a fresh
//! directory, and nothing may appear outside it.
#![no_main]

#[path = "common.rs"]
mod common;

use std::io::Write;

use backup_core::{RestoreOptions, RestoreTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let compressed = zstd::encode_all(data, 1).expect("zstd");
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&f.public as &dyn age::Recipient))
            .expect("encryptor");
    let mut object = Vec::new();
    let mut w = encryptor.wrap_output(&mut object).expect("age");
    w.write_all(&compressed).expect("age write");
    w.finish().expect("age finish");
    common::plant(f, object);

    let outer = tempfile::tempdir().expect("tempdir");
    let target = outer.path().join("restore");
    // The digests will not match the manifest, so the restore fails at the
    // end; extraction into the staging directory still runs on every byte.
    let _ = f.rt.block_on(f.repo.restore(
        &f.tar_manifest,
        &f.identities,
        RestoreTarget::Path(target),
        &RestoreOptions::default(),
    ));
    let escaped: Vec<_> = std::fs::read_dir(outer.path())
        .expect("ls")
        .filter_map(Result::ok)
        .collect();
    assert!(
        escaped.is_empty(),
        "restore left or wrote outside its target: {escaped:?}"
    );
});
