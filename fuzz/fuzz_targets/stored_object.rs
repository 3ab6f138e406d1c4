//! Arbitrary bytes as a stored object: restoring and verifying must end in
//! an error (or, impossibly, success), never a panic or a hang.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use backup_core::{NoProgress, RestoreOptions, RestoreTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    common::plant(f, data.to_vec());
    let _ = f.rt.block_on(
        f.repo
            .verify(&f.tar_manifest, &f.identities, Arc::new(NoProgress)),
    );
    let sink = RestoreTarget::Writer(Box::new(std::io::sink()));
    let _ = f.rt.block_on(f.repo.restore(
        &f.tar_manifest,
        &f.identities,
        sink,
        &RestoreOptions::default(),
    ));
});
