//! Looking inside directory backups and restoring parts of them: `ls`
//! from the index alone matches the archive, and a partial restore reads
//! only the frames that hold what it restores, yet restores exactly what
//! a full restore holds there.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use backup_core::index::{Entry, Kind};
use backup_core::store::ByteStream;
use backup_core::{
    BackupOptions, Identities, Listed, Manifest, MemoryStore, PipelineOptions, Repository,
    RestoreOptions, RestoreTarget, Result, Source, Store,
};
use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;
use test_support::tree::{Snap, build, snapshot, tree_spec};

use crate::support::{Rechunk, key_pair, runtime, test_store};

/// A store that counts the bytes it hands out.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Store>,
    read: Arc<AtomicU64>,
}

test_store!(Counting, {
    async fn get(&self, key: &str) -> Result<ByteStream> {
        // Lock objects are the repository's bookkeeping, not the backup.
        let read = match key.starts_with(backup_core::lock::LOCK_PREFIX) {
            true => Arc::new(AtomicU64::new(0)),
            false => Arc::clone(&self.read),
        };
        Ok(self
            .inner
            .get(key)
            .await?
            .inspect(move |c| {
                if let Ok(c) = c {
                    read.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
            })
            .boxed())
    }
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        let data = self.inner.get_range(key, start, len).await?;
        self.read.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(data)
    }
});

/// Every entry `ls` gives, without where it starts.
fn listing(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    m: &Manifest,
    ids: &Identities,
    under: &str,
) -> (Vec<Entry>, Listed) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let tap = Arc::clone(&out);
    let listed = rt
        .block_on(repo.ls(m, ids, under, move |e| {
            tap.lock().expect("lock").push(e);
            Ok(())
        }))
        .expect("ls");
    let entries = out.lock().expect("lock").clone();
    (entries, listed)
}

fn restore(
    rt: &tokio::runtime::Runtime,
    repo: &Repository,
    m: &Manifest,
    ids: &Identities,
    to: &Path,
    include: &[String],
) -> backup_core::RestoreReport {
    rt.block_on(repo.restore(
        m,
        ids,
        RestoreTarget::Path(to.to_path_buf()),
        &RestoreOptions::default().with_include(include.iter().cloned()),
    ))
    .expect("restore")
}

/// The entries of a restored tree at or below `under` (lossy names, as
/// `ls` gives them), hard-link groups left aside.
fn part(root: &Path, under: &str) -> BTreeMap<String, Snap> {
    snapshot(root)
        .expect("snapshot")
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
        .filter(|(k, _)| is_under(k, under))
        .map(|(k, v)| match v {
            Snap::File {
                content,
                mode,
                mtime,
                ..
            } => (
                k,
                Snap::File {
                    content,
                    mode,
                    mtime,
                    link_group: Vec::new(),
                },
            ),
            other => (k, other),
        })
        .collect()
}

fn is_under(path: &str, under: &str) -> bool {
    under == "." || path == under || path.starts_with(&format!("{under}/"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `ls` from the index is `ls` from the archive; a partial restore of
    /// any entry, through the index or by streaming, is what a full
    /// restore holds there (but hard links to entries outside it).
    #[test]
    fn index_and_archive_agree_and_parts_are_exact(
        spec in tree_spec(24),
        pick in any::<prop::sample::Index>(),
        rechunk in any::<bool>(),
    ) {
        let rt = runtime();
        let (recipients, ids) = key_pair();
        let dir = tempfile::tempdir().expect("tmp");
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).expect("tree");
        build(&tree, &spec).expect("build");
        let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // Through the default ranged read (from a re-cut stream) or the
        // store's own.
        let store: Arc<dyn Store> = if rechunk {
            Arc::new(Rechunk { inner: memory, sizes: vec![1, 7000, 65_536] })
        } else {
            memory
        };
        let repo = Repository::new(store);
        let opts = BackupOptions::new(recipients)
            .with_pipeline(PipelineOptions { frame_size: 64 << 10, ..PipelineOptions::default() });
        let m = rt.block_on(repo.backup(Source::path(&tree), &opts)).expect("backup");
        prop_assert!(m.index.is_some());
        let mut old = m.clone();
        old.index = None;

        let (from_index, how) = listing(&rt, &repo, &m, &ids, ".");
        prop_assert_eq!(how, Listed::Index);
        let (from_data, how) = listing(&rt, &repo, &old, &ids, ".");
        prop_assert_eq!(how, Listed::Data);
        prop_assert_eq!(&from_index, &from_data);

        let full = dir.path().join("full");
        restore(&rt, &repo, &m, &ids, &full, &[]);
        let path = from_index[pick.index(from_index.len())].path.clone();
        let picked = dir.path().join("picked");
        restore(&rt, &repo, &m, &ids, &picked, std::slice::from_ref(&path));
        let streamed = dir.path().join("streamed");
        restore(&rt, &repo, &old, &ids, &streamed, std::slice::from_ref(&path));

        // What a full restore holds there, without hard links to outside.
        let outside: Vec<&str> = from_index
            .iter()
            .filter(|e| e.kind == Kind::Hardlink)
            .filter(|e| !e.link.as_deref().is_some_and(|l| is_under(l, &path)))
            .map(|e| e.path.as_str())
            .collect();
        let mut expected = part(&full, &path);
        expected.retain(|k, _| !outside.contains(&k.as_str()));
        let got = part(&picked, &path);
        prop_assert_eq!(&got, &expected, "through the index, {}", path);
        prop_assert_eq!(&part(&streamed, &path), &expected, "streamed, {}", path);
    }
}

/// A one-file restore and `ls` read what the index promises, not the
/// backup: measured by counting the bytes the store hands out.
#[test]
fn one_file_reads_its_frames_and_ls_reads_the_index() {
    let rt = runtime();
    let (recipients, ids) = key_pair();
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    for i in 0..16 {
        let mut data = vec![0u8; 1 << 20];
        let mut x = 0x9e37_79b9_u32.wrapping_mul(i + 1);
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        std::fs::create_dir_all(tree.join(format!("d{i}"))).expect("dir");
        std::fs::write(tree.join(format!("d{i}/data.bin")), &data).expect("file");
        for j in 0..50 {
            std::fs::write(tree.join(format!("d{i}/small-{j}.txt")), format!("{i} {j}"))
                .expect("small");
        }
    }
    let read = Arc::new(AtomicU64::new(0));
    let store = Counting {
        inner: Arc::new(MemoryStore::new()),
        read: Arc::clone(&read),
    };
    let repo = Repository::new(Arc::new(store));
    let m = rt
        .block_on(repo.backup(Source::path(&tree), &BackupOptions::new(recipients)))
        .expect("backup");
    let index = m.index.clone().expect("an index");

    read.store(0, Ordering::Relaxed);
    let (entries, _) = listing(&rt, &repo, &m, &ids, "d7");
    assert_eq!(entries.len(), 52, "d7, its file and 50 small ones");
    assert_eq!(
        read.load(Ordering::Relaxed),
        index.stored,
        "ls reads the index alone"
    );

    read.store(0, Ordering::Relaxed);
    let out = dir.path().join("one");
    let report = restore(&rt, &repo, &m, &ids, &out, &["d9/data.bin".to_owned()]);
    let fetched = read.load(Ordering::Relaxed);
    assert_eq!(
        std::fs::read(out.join("d9/data.bin")).expect("restored"),
        std::fs::read(tree.join("d9/data.bin")).expect("original")
    );
    let parts = report.read.expect("read through the index");
    eprintln!(
        "one 1 MiB file of a {} B backup: index {} B + data {} B",
        m.sizes.stored, parts.index, parts.data
    );
    assert_eq!(fetched, parts.index + parts.data, "{parts:?}");
    // The file (1 MiB), the frames it starts and ends in (512 KiB of
    // plaintext each), and the reads' windows: well under a fifth of the
    // 16 MiB backup.
    assert!(
        parts.data < (1 << 20) + 2 * (512 << 10) + (512 << 10),
        "{parts:?} of {} stored",
        m.sizes.stored
    );
}
