//! Damaged, missing and mismatched backups are reported clearly, naming the
//! backup, and never restored silently wrong.

use std::sync::Arc;

use backup_core::{
    BackupId, BackupRef, Error, Manifest, MemoryStore, NoProgress, Repository, RestoreOptions,
    RestoreTarget, Source, Store, StoreExt,
};
use bytes::Bytes;

use crate::support::{key_pair, memory_repo, options, runtime};

/// A repository holding one directory backup of a few files.
fn fixture() -> (
    tokio::runtime::Runtime,
    Repository,
    MemoryStore,
    Manifest,
    backup_core::Identities,
    tempfile::TempDir,
) {
    let rt = runtime();
    let (repo, store) = memory_repo();
    let (recipients, identities) = key_pair();
    let scratch = tempfile::tempdir().expect("tempdir");
    let src = scratch.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..20 {
        let body: Vec<u8> = (0..50_000u32).map(|n| (n * (i + 3) % 241) as u8).collect();
        std::fs::write(src.join(format!("f{i}")), body).expect("write");
    }
    let manifest = rt
        .block_on(repo.backup(Source::path(&src), &options(&recipients)))
        .expect("backup");
    (rt, repo, store, manifest, identities, scratch)
}

fn stored(rt: &tokio::runtime::Runtime, store: &MemoryStore, key: &str) -> Vec<u8> {
    rt.block_on(store.get_bytes(key, u64::MAX))
        .expect("read")
        .to_vec()
}

/// Restores into a new path and verifies; both must fail as corrupt and the
/// target must not appear.
fn assert_rejected(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    manifest: &Manifest,
    ids: &backup_core::Identities,
    scratch: &std::path::Path,
    what: &str,
) {
    let target = scratch.join(format!("restore-{}", what.replace(' ', "-")));
    let err = rt
        .block_on(repo.restore(
            manifest,
            ids,
            RestoreTarget::Path(target.clone()),
            &RestoreOptions::default(),
        ))
        .expect_err(what);
    match &err {
        Error::Corrupt { id, .. } => assert_eq!(id, manifest.id.as_str(), "{what}: {err}"),
        other => panic!("{what}: expected a corrupt-backup error, got {other}"),
    }
    assert!(err.to_string().contains(manifest.id.as_str()), "{err}");
    assert!(
        !target.exists(),
        "{what}: a failed restore must not leave its target"
    );
    let leftovers: Vec<_> = std::fs::read_dir(scratch)
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{what}: staging left behind");
    let err = rt
        .block_on(repo.verify(manifest, ids, Arc::new(NoProgress)))
        .expect_err(what);
    assert!(
        matches!(err, Error::Corrupt { .. }),
        "{what}: verify said {err}"
    );
}

#[test]
fn flipped_bytes_anywhere_are_caught() {
    let (rt, repo, store, manifest, ids, scratch) = fixture();
    let original = stored(&rt, &store, &manifest.object);
    let len = original.len();
    for (what, at) in [
        ("header", 40),
        (
            "nonce",
            original
                .iter()
                .position(|&b| b == b'\n')
                .map_or(60, |p| p + 120)
                .min(len - 1),
        ),
        ("first chunk", len / 10),
        ("middle", len / 2),
        ("last byte", len - 1),
    ] {
        let mut damaged = original.clone();
        damaged[at] ^= 0x01;
        store.overwrite(&manifest.object, Bytes::from(damaged));
        assert_rejected(&rt, &repo, &manifest, &ids, scratch.path(), what);
    }
}

#[test]
fn truncated_and_extended_objects_are_caught() {
    let (rt, repo, store, manifest, ids, scratch) = fixture();
    let original = stored(&rt, &store, &manifest.object);
    for (what, bytes) in [
        ("cut at the end", original[..original.len() - 100].to_vec()),
        ("cut in half", original[..original.len() / 2].to_vec()),
        ("cut in the header", original[..30].to_vec()),
        ("empty", Vec::new()),
        (
            "extra bytes",
            [original.clone(), b"appended".to_vec()].concat(),
        ),
    ] {
        store.overwrite(&manifest.object, Bytes::from(bytes));
        assert_rejected(&rt, &repo, &manifest, &ids, scratch.path(), what);
    }
}

#[test]
fn a_missing_data_object_is_named() {
    let (rt, repo, store, manifest, ids, scratch) = fixture();
    rt.block_on(store.delete(&manifest.object)).expect("delete");
    let err = rt
        .block_on(repo.restore(
            &manifest,
            &ids,
            RestoreTarget::Path(scratch.path().join("r")),
            &RestoreOptions::default(),
        ))
        .expect_err("missing object");
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(err.to_string().contains(manifest.id.as_str()), "{err}");
}

#[test]
fn a_data_object_without_manifest_is_not_a_backup() {
    let (rt, repo, store, manifest, _, _) = fixture();
    rt.block_on(store.delete(&manifest.id.manifest_key()))
        .expect("delete");
    assert!(rt.block_on(repo.list()).expect("list").backups.is_empty());
    let err = rt
        .block_on(repo.find(&BackupRef::Id(manifest.id.clone())))
        .expect_err("no manifest");
    assert!(matches!(err, Error::BackupNotFound { .. }), "{err}");
    assert!(err.to_string().contains("never completed"), "{err}");
    let err = rt
        .block_on(repo.find(&BackupRef::Latest { name: None }))
        .expect_err("no backups");
    assert!(err.is_not_found(), "{err}");
}

#[test]
fn the_wrong_identity_is_told_apart_from_damage() {
    let (rt, repo, _store, manifest, _, scratch) = fixture();
    let (_, stranger) = key_pair();
    let err = rt
        .block_on(repo.restore(
            &manifest,
            &stranger,
            RestoreTarget::Path(scratch.path().join("r")),
            &RestoreOptions::default(),
        ))
        .expect_err("wrong key");
    match &err {
        Error::WrongKey { id, encrypted_to } => {
            assert_eq!(id, manifest.id.as_str());
            assert!(encrypted_to.starts_with("age1"), "{encrypted_to}");
        }
        other => panic!("expected WrongKey, got {other}"),
    }
    assert!(!scratch.path().join("r").exists());
    assert!(matches!(
        rt.block_on(repo.verify(&manifest, &stranger, Arc::new(NoProgress))),
        Err(Error::WrongKey { .. })
    ));
}

#[test]
fn broken_manifests_are_reported_not_trusted() {
    let (rt, repo, store, manifest, ids, _) = fixture();
    let key = manifest.id.manifest_key();

    store.overwrite(&key, Bytes::from_static(b"{ this is not json"));
    let err = rt
        .block_on(repo.find(&BackupRef::Id(manifest.id.clone())))
        .expect_err("bad json");
    assert!(matches!(err, Error::InvalidManifest { .. }), "{err}");
    assert!(err.to_string().contains(&key), "{err}");
    let listing = rt.block_on(repo.list()).expect("list still works");
    assert!(listing.backups.is_empty());
    assert_eq!(listing.broken.len(), 1);

    // Valid JSON claiming another backup's id.
    let mut other = manifest.clone();
    other.id = "20200101T000000Z-00000000".parse::<BackupId>().expect("id");
    store.overwrite(&key, Bytes::from(other.to_json()));
    let err = rt
        .block_on(repo.find(&BackupRef::Id(manifest.id.clone())))
        .expect_err("wrong id");
    assert!(err.to_string().contains("describes backup"), "{err}");

    // A manifest whose digest does not match the data.
    let mut lying = manifest.clone();
    lying.sha256.plaintext.0[0] ^= 1;
    store.overwrite(&key, Bytes::from(lying.to_json()));
    let found = rt
        .block_on(repo.find(&BackupRef::Id(manifest.id.clone())))
        .expect("parses");
    let err = rt
        .block_on(repo.verify(&found, &ids, Arc::new(NoProgress)))
        .expect_err("digest");
    assert!(err.to_string().contains("plaintext SHA-256"), "{err}");

    // A manifest pointing outside the data prefix is refused outright.
    let mut escaping = manifest.clone();
    escaping.object = "../../etc/passwd".into();
    store.overwrite(&key, Bytes::from(escaping.to_json()));
    assert!(matches!(
        rt.block_on(repo.find(&BackupRef::Id(manifest.id.clone()))),
        Err(Error::InvalidManifest { .. })
    ));
}

#[test]
fn restore_refuses_a_non_empty_target_unless_forced() {
    let (rt, repo, _store, manifest, ids, scratch) = fixture();
    let target = scratch.path().join("occupied");
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::write(target.join("keep.txt"), b"mine").expect("write");
    let err = rt
        .block_on(repo.restore(
            &manifest,
            &ids,
            RestoreTarget::Path(target.clone()),
            &RestoreOptions::default(),
        ))
        .expect_err("non-empty");
    assert!(matches!(err, Error::TargetNotEmpty { .. }), "{err}");
    assert!(
        !err.to_string().contains("--"),
        "no flag in a library message: {err}"
    );
    rt.block_on(repo.restore(
        &manifest,
        &ids,
        RestoreTarget::Path(target.clone()),
        &RestoreOptions::default().with_force(true),
    ))
    .expect("forced");
    assert!(target.join("f0").exists() && target.join("keep.txt").exists());
}
