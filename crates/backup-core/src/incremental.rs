//! Incremental directory backups.
//!
//! Every directory backup made with an index directory
//! ([`BackupOptions::index_dir`](crate::BackupOptions)) leaves there a file
//! index: each entry's name, type, size, mtime, ctime, inode, mode and
//! owner. An incremental backup (`--parent`) walks the tree again and
//! archives only regular files whose metadata differs from the parent's
//! index (or whose content hash differs, when the parent's scan saw the file
//! within two seconds of a change and metadata cannot tell); directories,
//! links and special files are always archived (they cost a header each).
//!
//! The layer is still a plain tar stream. Its first member,
//! `./.shipshape-deleted`, lists (NUL-separated) the paths to remove before
//! the layer is extracted: what disappeared since the parent, and what
//! changed type. Restoring an incremental restores its chain: the full
//! backup, then each layer, removing the listed paths before extracting it.
//! With stock tools, for each link oldest first:
//!
//! ```sh
//! age -d -i KEY LAYER | zstd -d | tar -xO ./.shipshape-deleted | (cd DIR && xargs -0 -r rm -rf --)
//! age -d -i KEY LAYER | zstd -d | tar -x -C DIR --exclude=./.shipshape-deleted
//! ```
//!
//! The index stays on the backup host, which needs no private key: it is
//! never stored in the repository (it names every file, unencrypted).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Error, Result};
use crate::manifest::{BackupId, Manifest, Payload, SourceInfo};

/// The member of an incremental layer that lists the paths to remove.
pub const DELETED_MEMBER: &str = "./.shipshape-deleted";

/// Index files larger than this are refused as damaged.
const MAX_INDEX: u64 = 1 << 30;

/// Files changed this close to the scan (in ns) are "racy": their mtime
/// cannot prove they did not change again within the same tick, so their
/// content hash is recorded and compared.
const RACY_NS: i64 = 2_000_000_000;

/// One entry of a tree, as the index records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The archive name (`./a/b`), hex-encoded bytes.
    #[serde(with = "hex_bytes")]
    pub name: Vec<u8>,
    /// `f` file, `d` directory, `l` symlink, `h` hard link, `s` special.
    pub kind: char,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// SHA-256 of the content, for racy files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

impl Entry {
    pub(crate) fn new(name: &[u8], kind: char, md: &fs::Metadata) -> Entry {
        Entry {
            name: name.to_vec(),
            kind,
            size: if kind == 'f' { md.len() } else { 0 },
            mtime_ns: md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
            ctime_ns: md.ctime().saturating_mul(1_000_000_000) + md.ctime_nsec(),
            ino: md.ino(),
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            sha256: None,
        }
    }

    /// Same metadata (everything but the hash).
    fn same_metadata(&self, other: &Entry) -> bool {
        (
            self.kind,
            self.size,
            self.mtime_ns,
            self.ctime_ns,
            self.ino,
            self.mode,
            self.uid,
            self.gid,
        ) == (
            other.kind,
            other.size,
            other.mtime_ns,
            other.ctime_ns,
            other.ino,
            other.mode,
            other.uid,
            other.gid,
        )
    }
}

/// A tree's index: what one directory backup saw.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Index {
    /// The backup it belongs to.
    pub backup: BackupId,
    /// When the walk started (ns since the epoch).
    pub scanned_ns: i64,
    pub entries: Vec<Entry>,
}

/// Collects the index during a walk and, for an incremental, decides what
/// is archived.
pub(crate) struct Tracker {
    parent: Option<(HashMap<Vec<u8>, Entry>, i64)>,
    scanned_ns: i64,
    index: Mutex<IndexFile>,
}

/// The index being written, entry by entry as the walk finds them (so its
/// memory does not grow with the tree), to a temporary file in the index
/// directory: `{"backup":ID,"scanned_ns":N,"entries":[...]}`, zstd-compressed.
/// [`Tracker::commit`] renames it into place; dropped before that, it is
/// removed.
struct IndexFile {
    dir: PathBuf,
    temp: PathBuf,
    path: PathBuf,
    /// Until the walk is over (or a write failed).
    out: Option<io::BufWriter<zstd::Encoder<'static, fs::File>>>,
    entries: u64,
    /// The first write error, reported when the walk is over.
    error: Option<io::Error>,
    committed: bool,
}

impl IndexFile {
    fn create(dir: &Path, backup: &BackupId, scanned_ns: i64) -> io::Result<IndexFile> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let temp = dir.join(format!(".{backup}.partial"));
        let file = fs::File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        let mut index = IndexFile {
            dir: dir.to_owned(),
            temp,
            path: index_path(dir, backup),
            out: None,
            entries: 0,
            error: None,
            committed: false,
        };
        // Level 1 with a 128 KiB window: a few hundred KiB of memory for
        // any size of tree (serde_json's many small writes are buffered:
        // each would otherwise be a zstd call of its own).
        let mut zstd = zstd::Encoder::new(file, 1)?;
        zstd.window_log(17)?;
        let mut out = io::BufWriter::with_capacity(64 << 10, zstd);
        out.write_all(b"{\"backup\":")?;
        serde_json::to_writer(&mut out, backup)?;
        write!(out, ",\"scanned_ns\":{scanned_ns},\"entries\":[")?;
        index.out = Some(out);
        Ok(index)
    }

    fn record(&mut self, entry: &Entry) {
        let Some(out) = &mut self.out else { return };
        let comma: &[u8] = if self.entries == 0 { b"" } else { b"," };
        let written = out
            .write_all(comma)
            .and_then(|()| serde_json::to_writer(&mut *out, entry).map_err(io::Error::from));
        match written {
            Ok(()) => self.entries += 1,
            Err(e) => {
                self.error = Some(e);
                self.out = None;
            }
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        out.write_all(b"]}")?;
        let file = out.into_inner().map_err(|e| e.into_error())?.finish()?;
        file.sync_all()
    }

    fn err(&self, e: io::Error) -> Error {
        index_err(&self.dir, e)
    }
}

fn index_err(dir: &Path, e: io::Error) -> Error {
    Error::Index {
        path: dir.to_owned(),
        problem: format!("cannot write the file index here: {e}"),
    }
}

impl Drop for IndexFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// What to do with a regular file during an incremental walk.
pub(crate) enum Verdict {
    /// Archive it.
    Archive,
    /// Unchanged since the parent: leave it out.
    Skip,
}

impl Tracker {
    /// A tracker writing the index of `backup` into `dir`, deciding against
    /// `parent`'s index when there is one.
    pub(crate) fn new(parent: Option<Index>, dir: &Path, backup: &BackupId) -> Result<Tracker> {
        let scanned_ns = now_ns();
        let index = IndexFile::create(dir, backup, scanned_ns).map_err(|e| index_err(dir, e))?;
        Ok(Tracker {
            parent: parent.map(|p| {
                let by_name = p.entries.into_iter().map(|e| (e.name.clone(), e)).collect();
                (by_name, p.scanned_ns)
            }),
            scanned_ns,
            index: Mutex::new(index),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, IndexFile> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True for an incremental walk.
    pub(crate) fn incremental(&self) -> bool {
        self.parent.is_some()
    }

    /// The paths to remove before extracting this layer: the parent's
    /// entries that are gone from `root` or changed type. `present` is
    /// what the backup's walk of `root` finds (paths and types, after its
    /// excludes), so a path excluded since the parent is removed too.
    pub(crate) fn deletions(
        &self,
        root: &Path,
        present: impl Iterator<Item = (PathBuf, fs::FileType)>,
    ) -> Vec<Vec<u8>> {
        let Some((parent, _)) = &self.parent else {
            return Vec::new();
        };
        let mut now: HashMap<Vec<u8>, char> = HashMap::new();
        for (path, ft) in present {
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_file() {
                'f'
            } else {
                's'
            };
            let name = archive_name(root, &path, ft.is_dir());
            now.insert(
                std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec(),
                kind,
            );
        }
        let mut gone: Vec<Vec<u8>> = parent
            .values()
            .filter(|e| e.name != b"./")
            .filter(|e| match now.get(&e.name) {
                None => true,
                // A hard link and its first path are both files on disk.
                Some(&k) => k != e.kind && !(k == 'f' && e.kind == 'h'),
            })
            .map(|e| e.name.clone())
            .collect();
        gone.sort();
        // Removing a directory removes what is below it.
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for name in gone {
            let covered = kept.last().is_some_and(|d| {
                name.starts_with(d) && (d.ends_with(b"/") || name.get(d.len()) == Some(&b'/'))
            });
            if !covered {
                kept.push(name);
            }
        }
        kept
    }

    /// True when the parent has the file `name` with the same metadata and
    /// saw it long enough after its last change: it need not be opened.
    pub(crate) fn unchanged(&self, name: &[u8], md: &fs::Metadata) -> bool {
        let Some((parent, scan)) = &self.parent else {
            return false;
        };
        let now = Entry::new(name, 'f', md);
        parent
            .get(name)
            .is_some_and(|old| old.same_metadata(&now) && old.mtime_ns < scan - RACY_NS)
    }

    /// Records `entry` and, for a regular file in an incremental walk,
    /// decides whether it is archived. `content` reads the file when a hash
    /// is needed.
    pub(crate) fn track(
        &self,
        mut entry: Entry,
        content: &mut dyn FnMut() -> io::Result<Vec<u8>>,
    ) -> io::Result<Verdict> {
        let racy = entry.kind == 'f' && entry.mtime_ns >= self.scanned_ns - RACY_NS;
        let mut verdict = Verdict::Archive;
        if let (Some((parent, parent_scan)), 'f') = (&self.parent, entry.kind) {
            if let Some(old) = parent.get(&entry.name).filter(|o| o.same_metadata(&entry)) {
                let parent_racy = old.mtime_ns >= parent_scan - RACY_NS;
                if !parent_racy {
                    entry.sha256 = old.sha256.clone();
                    verdict = Verdict::Skip;
                } else if let Some(want) = &old.sha256 {
                    let hash = hex::encode(sha2::Sha256::digest(content()?));
                    if &hash == want {
                        verdict = Verdict::Skip;
                    }
                    entry.sha256 = Some(hash);
                }
            }
        }
        if racy && entry.sha256.is_none() {
            entry.sha256 = Some(hex::encode(sha2::Sha256::digest(content()?)));
        }
        self.index().record(&entry);
        Ok(verdict)
    }

    /// Completes the index once the walk is over: written and synced, but
    /// still under its temporary name, while the rest of the pipeline
    /// drains.
    pub(crate) fn finish_walk(&self) -> Result<()> {
        let mut index = self.index();
        index.finish().map_err(|e| index.err(e))
    }

    /// Puts the completed index in place; call once the backup is complete.
    pub(crate) fn commit(&self) -> Result<()> {
        let mut index = self.index();
        index.finish().map_err(|e| index.err(e))?;
        fs::rename(&index.temp, &index.path).map_err(|e| index.err(e))?;
        index.committed = true;
        Ok(())
    }
}

fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Where file indexes are kept by default: `$SHIPSHAPE_INDEX_DIR`, else
/// `$XDG_CACHE_HOME/shipshape/index`, else `~/.cache/shipshape/index`.
pub fn default_index_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("SHIPSHAPE_INDEX_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("shipshape/index"))
}

/// True when `dir` holds the file index of backup `id`.
pub fn has_index(dir: &Path, id: &BackupId) -> bool {
    index_path(dir, id).is_file()
}

fn index_path(dir: &Path, id: &BackupId) -> PathBuf {
    dir.join(format!("{id}.idx.zst"))
}

/// Reads the index of `parent` from `dir`.
pub(crate) fn load(dir: &Path, parent: &BackupId) -> Result<Index> {
    let path = index_path(dir, parent);
    let index_err = |problem: String| Error::Index {
        path: path.clone(),
        problem,
    };
    let file = fs::File::open(&path).map_err(|e| {
        index_err(format!(
            "there is no file index for backup {parent} on this host ({e}); an incremental \
             needs the index its parent's backup left here: make a full backup first"
        ))
    })?;
    let mut text = Vec::new();
    zstd::Decoder::new(file)
        .and_then(|d| d.take(MAX_INDEX).read_to_end(&mut text))
        .map_err(|e| index_err(format!("is damaged: {e}")))?;
    let index: Index =
        serde_json::from_slice(&text).map_err(|e| index_err(format!("is damaged: {e}")))?;
    if &index.backup != parent {
        return Err(index_err(format!("belongs to backup {}", index.backup)));
    }
    Ok(index)
}

/// Checks that `parent` can be the parent of a backup of the directory
/// `path`, or of `paths` (relative, as a manifest has them) below it.
pub(crate) fn check_parent(parent: &Manifest, path: &Path, paths: &[String]) -> Result<()> {
    let same = matches!(&parent.source, SourceInfo::Directory { path: p, paths: had, .. }
        if (Path::new(p) == path
            || fs::canonicalize(p).ok().is_some_and(|p| fs::canonicalize(path).ok() == Some(p)))
            && had == paths);
    if parent.payload != Payload::Tar || !same {
        return Err(Error::Incremental {
            problem: format!(
                "backup {} is not a backup of {}, so it cannot be the parent of an incremental \
                 of it",
                parent.id,
                match paths.is_empty() {
                    true => format!("the directory {}", path.display()),
                    false => format!("{} in {}", paths.join(", "), path.display()),
                }
            ),
        });
    }
    Ok(())
}

/// The number of links above `m` in its chain (0 for a full backup), as
/// far as `backups` has them.
pub fn chain_length(m: &Manifest, backups: &[Manifest]) -> usize {
    let by_id: HashMap<&BackupId, &Manifest> = backups.iter().map(|b| (&b.id, b)).collect();
    let mut seen = HashSet::new();
    let mut n = 0;
    let mut cur = m;
    while let Some(parent) = cur.parent.as_ref().and_then(|p| by_id.get(p)) {
        if !seen.insert(&parent.id) {
            break;
        }
        n += 1;
        cur = parent;
    }
    n
}

/// `./` for the root, `./rel/path` below it, with a trailing `/` for
/// directories, as GNU tar names them.
pub(crate) fn archive_name(root: &Path, path: &Path, dir: bool) -> PathBuf {
    let mut name = OsString::from("./");
    if let Ok(rel) = path.strip_prefix(root) {
        name.push(rel.as_os_str());
        if dir && !rel.as_os_str().is_empty() {
            name.push("/");
        }
    }
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, md: &fs::Metadata) -> Entry {
        Entry::new(name.as_bytes(), 'f', md)
    }

    #[test]
    fn the_index_is_written_as_the_walk_goes_and_only_committed_at_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = fs::metadata(dir.path()).expect("stat");
        let id = BackupId::generate(chrono::Utc::now());
        let tracker = Tracker::new(None, dir.path(), &id).expect("tracker");
        for name in ["./a", "./b\u{e9}", "./c \"quoted\""] {
            tracker
                .track(entry(name, &md), &mut || Ok(Vec::new()))
                .expect("track");
        }
        tracker.finish_walk().expect("finish");
        assert!(!has_index(dir.path(), &id), "not in place before commit");
        tracker.commit().expect("commit");
        drop(tracker);
        let index = load(dir.path(), &id).expect("load");
        let names: Vec<&[u8]> = index.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(
            names,
            [&b"./a"[..], "./b\u{e9}".as_bytes(), b"./c \"quoted\""]
        );
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn an_index_never_committed_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let md = fs::metadata(dir.path()).expect("stat");
        let id = BackupId::generate(chrono::Utc::now());
        let tracker = Tracker::new(None, dir.path(), &id).expect("tracker");
        tracker
            .track(entry("./a", &md), &mut || Ok(Vec::new()))
            .expect("track");
        tracker.finish_walk().expect("finish");
        drop(tracker);
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
