//! Property tests: backup then restore gives back exactly what was backed
//! up, for any input, any read chunking, any store chunking and any
//! pipeline settings.

use std::sync::Arc;

use backup_core::{
    BackupOptions, MemoryStore, PipelineOptions, Repository, RestoreOptions, RestoreTarget, Source,
    Store,
};
use proptest::prelude::*;
use test_support::tree::{assert_same_tree, build, tree_spec};

use crate::support::{Chunked, Rechunk, SharedBuf, key_pair, runtime, sha256};

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..70_000),
        // Compressible and crossing several 64 KiB frames.
        1 => (1usize..400_000, any::<u8>()).prop_map(|(n, seed)| {
            (0..n).map(|i| ((i / 97) as u8).wrapping_add(seed)).collect()
        }),
    ]
}

fn pipeline() -> impl Strategy<Value = PipelineOptions> {
    (
        1usize..=3,
        prop_oneof![Just(64usize << 10), Just(192 << 10)],
        1i32..=6,
        1usize..200_000,
    )
        .prop_map(|(workers, frame_size, level, chunk_size)| PipelineOptions {
            level,
            workers,
            frame_size,
            chunk_size,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn bytes_round_trip(
        data in data(),
        read_sizes in proptest::collection::vec(1usize..100_000, 1..8),
        get_sizes in proptest::collection::vec(1usize..100_000, 1..8),
        settings in pipeline(),
    ) {
        let rt = runtime();
        let (recipients, identities) = key_pair();
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let repo = Repository::new(Arc::new(Rechunk { inner: memory, sizes: get_sizes }));
        let source = Source::reader("bytes", Chunked { data: data.clone(), pos: 0, sizes: read_sizes, turn: 0 });
        let opts = BackupOptions::new(recipients).with_pipeline(settings);
        let manifest = rt.block_on(repo.backup(source, &opts)).expect("backup");
        prop_assert_eq!(manifest.sizes.raw, data.len() as u64);
        prop_assert_eq!(manifest.sha256.plaintext, sha256(&data));

        let out = SharedBuf::default();
        let report = rt
            .block_on(repo.restore(&manifest, &identities, RestoreTarget::Writer(Box::new(out.clone())), &RestoreOptions::default()))
            .expect("restore");
        prop_assert_eq!(report.bytes, data.len() as u64);
        prop_assert!(out.take() == data, "restored bytes differ");
        let verified = rt.block_on(repo.verify(&manifest, &identities, Arc::new(backup_core::NoProgress))).expect("verify");
        prop_assert_eq!(verified.raw, data.len() as u64);
    }

    #[test]
    fn trees_round_trip(spec in tree_spec(24), settings in pipeline()) {
        let rt = runtime();
        let (recipients, identities) = key_pair();
        let scratch = tempfile::tempdir().expect("tempdir");
        let src = scratch.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        build(&src, &spec).expect("build tree");


        let repo = Repository::new(Arc::new(MemoryStore::new()));
        let opts = BackupOptions::new(recipients).with_pipeline(settings);
        let manifest = rt.block_on(repo.backup(Source::path(&src), &opts)).expect("backup");

        let dst = scratch.path().join("restored/here");
        let report = rt
            .block_on(repo.restore(&manifest, &identities, RestoreTarget::Path(dst.clone()), &RestoreOptions::default()))
            .expect("restore");
        prop_assert_eq!(report.bytes, manifest.sizes.raw);
        assert_same_tree(&src, &dst);
        let verified = rt.block_on(repo.verify(&manifest, &identities, Arc::new(backup_core::NoProgress))).expect("verify");
        prop_assert_eq!(verified.entries, report.entries);
    }
}

#[test]
fn passphrase_round_trip() {
    let rt = runtime();
    let pass =
        backup_core::age::secrecy::SecretString::from("correct horse battery staple".to_owned());
    let repo = Repository::new(Arc::new(MemoryStore::new()));
    let opts = BackupOptions::new(backup_core::Recipients::passphrase(pass.clone()));
    let data = b"secret notes".repeat(1000);
    let manifest = rt
        .block_on(repo.backup(
            Source::reader("notes", std::io::Cursor::new(data.clone())),
            &opts,
        ))
        .expect("backup");
    assert!(manifest.encryption.passphrase && manifest.encryption.recipients.is_empty());
    let out = SharedBuf::default();
    rt.block_on(repo.restore(
        &manifest,
        &backup_core::Identities::passphrase(pass),
        RestoreTarget::Writer(Box::new(out.clone())),
        &RestoreOptions::default(),
    ))
    .expect("restore");
    assert_eq!(out.take(), data);
}

#[test]
fn many_recipients_each_can_restore() {
    let rt = runtime();
    let keys: Vec<_> = (0..3).map(|_| backup_core::keys::generate()).collect();
    let recipients = backup_core::Recipients::x25519(keys.iter().map(|k| k.to_public()));
    let repo = Repository::new(Arc::new(MemoryStore::new()));
    let manifest = rt
        .block_on(repo.backup(
            Source::reader("x", &b"shared"[..]),
            &BackupOptions::new(recipients),
        ))
        .expect("backup");
    assert_eq!(manifest.encryption.recipients.len(), 3);
    for key in keys {
        let out = SharedBuf::default();
        rt.block_on(repo.restore(
            &manifest,
            &backup_core::Identities::from_key(key),
            RestoreTarget::Writer(Box::new(out.clone())),
            &RestoreOptions::default(),
        ))
        .expect("each recipient restores");
        assert_eq!(out.take(), b"shared");
    }
}
