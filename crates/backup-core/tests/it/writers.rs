//! Many writers, one repository: locks keep prune and gc away from running
//! backups, chains cannot break, objects are deleted by reference, and a
//! restore never reaches outside its target, whatever the archive says.

use std::fs;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backup_core::manifest::Payload;
use backup_core::retention::{Keep, Policy};
use backup_core::{
    BackupOptions, Error, Identities, Manifest, Progress, Recipients, Repository, RestoreOptions,
    RestoreTarget, Source, Store, StoreExt,
};
use bytes::Bytes;

use crate::support::{key_pair, runtime};

/// Calls `hook` once, on the first plaintext a backup reads: the backup is
/// then certainly under way (its lock held, its data object not yet
/// listed).
struct Midway(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl std::fmt::Debug for Midway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Midway")
    }
}

impl Progress for Midway {
    fn plaintext(&self, _bytes: u64) {
        let hook = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

/// Runs `during` on the test's runtime while a backup with these options
/// is stopped midway, then lets the backup finish; returns both results.
fn midway<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    source: Source,
    opts: BackupOptions,
    during: impl FnOnce(Repository) -> T + Send + 'static,
) -> (backup_core::Result<Manifest>, T) {
    let (reached, wait_reached) = mpsc::channel::<()>();
    let (go_on, wait_go_on) = mpsc::channel::<()>();
    let hook = Box::new(move || {
        let _ = reached.send(());
        let _ = wait_go_on.recv_timeout(Duration::from_secs(60));
    });
    let opts = opts.with_progress(Arc::new(Midway(Mutex::new(Some(hook)))));
    let backup = {
        let repo = repo.clone();
        rt.spawn(async move { repo.backup(source, &opts).await })
    };
    wait_reached
        .recv_timeout(Duration::from_secs(60))
        .expect("the backup reads its source");
    let out = {
        let repo = repo.clone();
        std::thread::spawn(move || during(repo))
            .join()
            .expect("during")
    };
    let _ = go_on.send(());
    let made = rt.block_on(backup).expect("join");
    (made, out)
}

fn tree(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("tree");
    fs::create_dir_all(root.join("sub")).expect("mkdir");
    for i in 0..20 {
        fs::write(root.join(format!("sub/f{i}")), vec![i as u8; 40_000]).expect("write");
    }
    root
}

fn keep_last(n: u32) -> Policy {
    Policy {
        last: Keep::Count(n),
        ..Policy::default()
    }
}

#[test]
fn a_prune_cannot_remove_the_parent_of_an_incremental_being_written() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = tree(dir.path());
    let index = dir.path().join("index");
    let repo = Repository::local(dir.path().join("repo"));
    let (recipients, identities) = key_pair();
    let opts = BackupOptions::new(recipients.clone())
        .with_name("app")
        .with_index_dir(&index);
    let full = rt
        .block_on(repo.backup(Source::path(&root), &opts))
        .expect("full");
    // A newer full backup of the name: keep-last 1 would remove `full`.
    rt.block_on(repo.backup(Source::path(&root), &opts))
        .expect("second full");
    fs::write(root.join("sub/f3"), "changed").expect("change");

    let (made, pruned) = midway(
        &rt,
        &repo,
        Source::path(&root),
        opts.clone().with_parent(full.clone()),
        |repo| runtime().block_on(repo.prune(&keep_last(1), &chrono::Utc, Some("app"), true)),
    );
    let err = pruned.expect_err("the prune is refused while the incremental runs");
    assert!(
        matches!(err, Error::Locked { .. }) && err.to_string().contains("`backup`"),
        "{err}"
    );
    let layer = made.expect("the incremental finishes");
    // Its chain is whole: it verifies and restores.
    let report = rt
        .block_on(repo.verify(&layer, &identities, Arc::new(backup_core::NoProgress)))
        .expect("verify");
    assert_eq!(report.layers, 2);
    let out = dir.path().join("out");
    rt.block_on(repo.restore(
        &layer,
        &identities,
        RestoreTarget::Path(out.clone()),
        &RestoreOptions::default(),
    ))
    .expect("restore");
    assert_eq!(fs::read(out.join("sub/f3")).expect("read"), b"changed");
    // Once nothing runs, the same prune keeps the incremental's parent.
    let plan = rt
        .block_on(repo.prune(&keep_last(1), &chrono::Utc, Some("app"), true))
        .expect("prune");
    assert!(plan.removals().all(|r| r.id != full.id), "{plan:?}");
}

#[test]
fn an_incremental_whose_parent_vanished_fails_and_lists_nothing() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = tree(dir.path());
    let repo = Repository::local(dir.path().join("repo"));
    let (recipients, _) = key_pair();
    let opts = BackupOptions::new(recipients)
        .with_name("app")
        .with_index_dir(dir.path().join("index"));
    let full = rt
        .block_on(repo.backup(Source::path(&root), &opts))
        .expect("full");
    // What a prune that ignores locks (an old version, a lock removed by
    // force) would do: the parent's manifest goes mid-backup.
    let key = full.id.manifest_key();
    let (made, ()) = midway(
        &rt,
        &repo,
        Source::path(&root),
        opts.clone().with_parent(full.clone()),
        move |repo| {
            runtime()
                .block_on(repo.store().delete(&key))
                .expect("delete the parent's manifest")
        },
    );
    let err = made.expect_err("the layer has nothing to build on");
    assert!(
        err.to_string().contains("was removed while it ran"),
        "{err}"
    );
    let listing = rt.block_on(repo.list()).expect("list");
    assert!(listing.backups.is_empty(), "{:?}", listing.backups);
    let data = rt.block_on(repo.store().list("data/")).expect("list data");
    assert_eq!(
        data.iter()
            .filter(|o| !o.key.contains(full.id.as_str()))
            .count(),
        0,
        "the discarded layer's objects are removed: {data:?}"
    );
}

#[test]
fn gc_does_not_run_beside_a_backup() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = tree(dir.path());
    let repo = Repository::local(dir.path().join("repo"));
    let (recipients, identities) = key_pair();
    let opts = BackupOptions::new(recipients);
    let (made, collected) = midway(&rt, &repo, Source::path(&root), opts, |repo| {
        runtime().block_on(repo.gc(Duration::ZERO, true))
    });
    let err = collected.expect_err("gc waits its turn");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    let m = made.expect("backup");
    rt.block_on(repo.verify(&m, &identities, Arc::new(backup_core::NoProgress)))
        .expect("its data is all there");
}

/// A store on which, the moment gc lists the data objects, another host
/// starts a backup: its lock appears, then its first object.
#[derive(Debug)]
struct Racing {
    inner: Arc<dyn Store>,
    root: std::path::PathBuf,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Store for Racing {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn put(
        &self,
        key: &str,
        data: backup_core::store::ByteStream,
    ) -> backup_core::Result<backup_core::store::ObjectMeta> {
        self.inner.put(key, data).await
    }
    async fn get(&self, key: &str) -> backup_core::Result<backup_core::store::ByteStream> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> backup_core::Result<backup_core::store::ObjectMeta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> backup_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> backup_core::Result<Vec<backup_core::store::ObjectMeta>> {
        if prefix == "data/" && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            // Its backup started a minute ago and wrote an object since;
            // its lock had not reached the listing gc made of the locks.
            let now = chrono::Utc::now();
            let lock = serde_json::json!({
                "kind": "shared", "operation": "backup", "host": "elsewhere", "pid": 7,
                "created": now - chrono::TimeDelta::seconds(60), "refreshed": now,
            });
            self.inner
                .put_bytes("locks/elsewhere.json", Bytes::from(lock.to_string()))
                .await?;
            self.inner
                .put_bytes(
                    "data/20990101T000000Z-00000000.zst.age",
                    Bytes::from_static(b"x"),
                )
                .await?;
            let written = std::time::SystemTime::now() - Duration::from_secs(30);
            filetime::set_file_mtime(
                self.root.join("data/20990101T000000Z-00000000.zst.age"),
                filetime::FileTime::from_system_time(written),
            )
            .map_err(|e| Error::Interrupted(e.to_string()))?;
        }
        self.inner.list(prefix).await
    }
}

#[test]
fn gc_leaves_alone_what_a_live_lock_holder_wrote_whatever_its_threshold() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let racing = Arc::new(Racing {
        inner: Arc::new(backup_core::LocalStore::new(dir.path())),
        root: dir.path().to_path_buf(),
        armed: std::sync::atomic::AtomicBool::new(true),
    });
    let repo = Repository::new(Arc::clone(&racing) as Arc<dyn Store>);
    let report = rt.block_on(repo.gc(Duration::ZERO, true)).expect("gc");
    assert!(report.held_back_by.is_some(), "{report:?}");
    assert!(report.unreferenced.is_empty(), "{report:?}");
    let store = &racing.inner;
    assert!(
        rt.block_on(store.head("data/20990101T000000Z-00000000.zst.age"))
            .is_ok()
    );
    // Once that backup is gone (its lock released), gc goes on.
    rt.block_on(store.delete("locks/elsewhere.json"))
        .expect("release");
    let report = rt.block_on(repo.gc(Duration::ZERO, true)).expect("gc");
    assert_eq!(report.unreferenced.len(), 1, "{report:?}");
}

/// Writes `manifest` over the stored one (as anyone who can write to the
/// repository could).
fn rewrite(rt: &tokio::runtime::Runtime, repo: &Repository, manifest: &Manifest) {
    rt.block_on(
        repo.store()
            .put_bytes(&manifest.id.manifest_key(), Bytes::from(manifest.to_json())),
    )
    .expect("rewrite manifest");
}

#[test]
fn an_object_two_manifests_name_stays_while_either_does() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = tree(dir.path());
    let repo = Repository::local(dir.path().join("repo"));
    let (recipients, identities) = key_pair();
    let opts = BackupOptions::new(recipients).with_name("app");
    let first = rt
        .block_on(repo.backup(Source::path(&root), &opts))
        .expect("backup");
    // A second manifest naming the first one's objects (a copy, an import
    // of the same data, another tool's bookkeeping).
    let mut twin = rt
        .block_on(repo.backup(Source::path(&root), &opts))
        .expect("backup");
    let own = (twin.object.clone(), twin.index.clone());
    twin.object = first.object.clone();
    twin.index = first.index.clone();
    twin.sizes = first.sizes;
    twin.sha256 = first.sha256;
    twin.encryption = first.encryption.clone();
    rewrite(&rt, &repo, &twin);
    rt.block_on(repo.store().delete(&own.0))
        .expect("drop own data");
    if let Some(index) = own.1 {
        rt.block_on(repo.store().delete(&index.object))
            .expect("drop own index");
    }

    let plan = rt
        .block_on(repo.prune(&keep_last(1), &chrono::Utc, Some("app"), true))
        .expect("prune");
    assert_eq!(plan.removals().count(), 1);
    rt.block_on(repo.verify(&twin, &identities, Arc::new(backup_core::NoProgress)))
        .expect("the kept manifest's object is still there");
    let report = rt.block_on(repo.gc(Duration::ZERO, true)).expect("gc");
    assert!(report.unreferenced.is_empty(), "{report:?}");
    rt.block_on(repo.remove(&twin)).expect("remove the last");
    assert!(
        rt.block_on(repo.store().list("data/"))
            .expect("list")
            .is_empty(),
        "once no manifest names it, the object goes"
    );
}

/// A tar stream of `(name, kind, data or link target)` entries.
fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        // Written raw: the tar crate's builder refuses `..` itself.
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if kind.is_symlink() || kind.is_hard_link() {
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            h.set_size(0);
            h.set_cksum();
            out.append(&h, &[][..]).expect("append");
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            out.append(&h, *data).expect("append");
        }
    }
    out.into_inner().expect("tar")
}

/// Stores `tar` as a directory backup (or, with `parent`, an incremental
/// layer on it) the way someone holding only the public key could.
fn forge(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    recipients: &Recipients,
    tar: Vec<u8>,
    parent: Option<&Manifest>,
) -> Manifest {
    let opts = BackupOptions::new(recipients.clone()).with_name("forged");
    let mut m = rt
        .block_on(repo.backup(Source::reader("forged", std::io::Cursor::new(tar)), &opts))
        .expect("store");
    m.payload = Payload::Tar;
    m.parent = parent.map(|p| p.id.clone());
    rewrite(rt, repo, &m);
    m
}

fn restore_into(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    m: &Manifest,
    ids: &Identities,
    out: &Path,
) -> backup_core::Result<backup_core::RestoreReport> {
    rt.block_on(repo.restore(
        m,
        ids,
        RestoreTarget::Path(out.to_path_buf()),
        &RestoreOptions::default(),
    ))
}

#[test]
fn a_forged_layer_cannot_delete_or_write_through_a_symbolic_link() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("file"), "precious").expect("write");
    let repo = Repository::local(dir.path().join("repo"));
    let (recipients, identities) = key_pair();
    let link = outside.display().to_string();
    let full = forge(
        &rt,
        &repo,
        &recipients,
        tar_of(&[
            ("./", tar::EntryType::Directory, b""),
            ("./s", tar::EntryType::Symlink, link.as_bytes()),
        ]),
        None,
    );
    let deletes = forge(
        &rt,
        &repo,
        &recipients,
        tar_of(&[(
            "./.shipshape-deleted",
            tar::EntryType::Regular,
            b"./s/file\0",
        )]),
        Some(&full),
    );
    let writes = forge(
        &rt,
        &repo,
        &recipients,
        tar_of(&[
            ("./.shipshape-deleted", tar::EntryType::Regular, b""),
            ("./s/new", tar::EntryType::Regular, b"planted"),
        ]),
        Some(&full),
    );
    for layer in [&deletes, &writes] {
        let out = dir.path().join(format!("out-{}", layer.id));
        let err = restore_into(&rt, &repo, layer, &identities, &out).expect_err("refused");
        assert!(
            matches!(&err, Error::OutsideTarget { entry, .. } if entry.starts_with("s/")),
            "{err}"
        );
        assert!(!out.exists(), "nothing appears at the target");
        let err = rt
            .block_on(repo.verify(layer, &identities, Arc::new(backup_core::NoProgress)))
            .expect_err("verify refuses what restore refuses");
        assert!(matches!(err, Error::OutsideTarget { .. }), "{err}");
    }
    assert_eq!(
        fs::read_to_string(outside.join("file")).expect("read"),
        "precious"
    );
    assert_eq!(fs::read_dir(&outside).expect("list").count(), 1);
    // The full backup alone is fine: a link is just a link.
    restore_into(&rt, &repo, &full, &identities, &dir.path().join("plain")).expect("restore");
}

#[test]
fn entries_with_parent_parts_are_reported_by_restore_and_verify() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::local(dir.path().join("repo"));
    let (recipients, identities) = key_pair();
    for (name, kind, data) in [
        ("./../escaped", tar::EntryType::Regular, &b"x"[..]),
        ("./ok/../../escaped", tar::EntryType::Regular, b"x"),
        ("./hard", tar::EntryType::Link, b"../../etc/passwd"),
    ] {
        let m = forge(
            &rt,
            &repo,
            &recipients,
            tar_of(&[
                ("./", tar::EntryType::Directory, b""),
                ("./fine", tar::EntryType::Regular, b"fine"),
                (name, kind, data),
            ]),
            None,
        );
        let out = dir.path().join("t").join("out");
        let err = restore_into(&rt, &repo, &m, &identities, &out).expect_err(name);
        assert!(matches!(err, Error::OutsideTarget { .. }), "{name}: {err}");
        assert!(err.to_string().contains(".."), "{err}");
        assert!(!dir.path().join("t/escaped").exists());
        assert!(!dir.path().join("escaped").exists());
        let err = rt
            .block_on(repo.verify(&m, &identities, Arc::new(backup_core::NoProgress)))
            .expect_err("verify refuses it too");
        assert!(matches!(err, Error::OutsideTarget { .. }), "{name}: {err}");
    }
}

#[test]
fn locks_name_their_holder_and_unlock_clears_what_is_stale() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(backup_core::LocalStore::new(dir.path()));
    let repo = Repository::new(Arc::clone(&store));
    let held = rt
        .block_on(backup_core::lock::RepoLock::acquire(
            Arc::clone(&store),
            backup_core::lock::LockKind::Exclusive,
            "prune",
            repo.locks(),
        ))
        .expect("lock");
    let locks = rt.block_on(repo.list_locks()).expect("locks");
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].info.pid, std::process::id());
    assert!(!locks[0].stale);
    let removed = rt.block_on(repo.unlock(false)).expect("unlock");
    assert!(!removed[0].1, "a live lock stays without force");
    rt.block_on(held.release()).expect("release");
    assert!(rt.block_on(repo.list_locks()).expect("locks").is_empty());
}
