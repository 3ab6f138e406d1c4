//! Shared by the targets that run the restore pipeline.

use std::sync::{Arc, OnceLock};

use backup_core::{
    BackupOptions, Identities, Manifest, MemoryStore, Recipients, Repository, Source, keys,
};

#[allow(dead_code)] // each target uses a different part
pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub identities: Identities,
    pub recipients: Recipients,
    /// The one key `recipients` holds, for targets that encrypt by hand.
    pub public: age::x25519::Recipient,
    pub store: MemoryStore,
    pub repo: Repository,
    /// A manifest to pose as the owner of whatever bytes are stored.
    pub tar_manifest: Manifest,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let key = keys::generate();
        let recipients = Recipients::x25519([key.to_public()]);
        let store = MemoryStore::new();
        let repo = Repository::new(Arc::new(store.clone()));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), b"a").expect("write");
        let tar_manifest = rt
            .block_on(repo.backup(
                Source::path(dir.path()),
                &BackupOptions::new(recipients.clone()),
            ))
            .expect("seed backup");
        Fixture {
            rt,
            public: key.to_public(),
            identities: Identities::from_key(key),
            recipients,
            store,
            repo,
            tar_manifest,
        }
    })
}

/// Stores `object` as the data of the fixture's backup.
#[allow(dead_code)] // not every target plants
pub fn plant(f: &Fixture, object: Vec<u8>) {
    f.store
        .overwrite(&f.tar_manifest.object, bytes::Bytes::from(object));
}
