//! Random file trees and exact tree comparison.
//!
//! [`tree_spec`] generates trees with everything a directory backup must
//! keep: regular and empty files, nested and empty directories, symbolic
//! links (dangling ones too), hard links, permissions, mtimes, names that
//! are not UTF-8 and paths longer than tar's 100-byte name field.
//! [`snapshot`] reads a tree back into a comparable value.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use proptest::prelude::*;

/// What one generated entry is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A regular file.
    File {
        /// Its bytes.
        content: Vec<u8>,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory, possibly left empty.
    Dir {
        /// Its permission bits.
        mode: u32,
    },
    /// A symbolic link; the target may not exist.
    Symlink {
        /// Where it points.
        target: Vec<u8>,
    },
    /// A hard link to an earlier regular file (chosen by index, modulo the
    /// number of files made so far).
    HardLink {
        /// Which earlier file.
        to: usize,
    },
}

/// One entry of a generated tree.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path segments (raw bytes, no `/` or NUL).
    pub path: Vec<Vec<u8>>,
    /// What to create.
    pub kind: Kind,
    /// Modification time, in seconds since the epoch.
    pub mtime: i64,
}

/// A file or directory name: short ASCII, non-UTF-8 bytes, UTF-8 beyond
/// ASCII, or longer than 100 bytes.
pub fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-z0-9_.-]{1,12}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(prop_oneof![0x80u8..=0xff, b'a'..=b'z'], 1..16),
        1 => "[αβγ☃éø日本]{1,8}".prop_map(String::into_bytes),
        1 => "[a-z]{101,180}".prop_map(String::into_bytes),
    ]
    .prop_filter("a valid single path segment", |n| {
        !n.contains(&b'/') && !n.contains(&0) && n.as_slice() != b"." && n.as_slice() != b".."
    })
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0o644),
        Just(0o600),
        Just(0o755),
        Just(0o400),
        Just(0o750)
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        5 => (proptest::collection::vec(any::<u8>(), 0..4096), mode())
            .prop_map(|(content, mode)| Kind::File { content, mode }),
        1 => (proptest::collection::vec(any::<u8>(), 65_000..140_000), mode())
            .prop_map(|(content, mode)| Kind::File { content, mode }),
        2 => prop_oneof![Just(0o755), Just(0o700), Just(0o750)].prop_map(|mode| Kind::Dir { mode }),
        1 => proptest::collection::vec(name(), 1..4)
            .prop_map(|parts| Kind::Symlink { target: parts.join(&b'/') }),
        1 => any::<usize>().prop_map(|to| Kind::HardLink { to }),
    ]
}

/// A random tree of up to `max` entries.
pub fn tree_spec(max: usize) -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(name(), 1..4),
            kind(),
            0i64..2_000_000_000,
        )
            .prop_map(|(path, kind, mtime)| Entry { path, kind, mtime }),
        0..max,
    )
}

fn join(root: &Path, segments: &[Vec<u8>]) -> PathBuf {
    let mut p = root.to_path_buf();
    for s in segments {
        p.push(OsStr::from_bytes(s));
    }
    p
}

/// Creates the entries under `root` (which must exist). Entries that
/// collide with earlier ones are skipped; missing parent directories are
/// created with the entry's mtime. Directory mtimes are set last,
/// deepest first, so creating children does not disturb them.
///
/// # Errors
///
/// When an entry cannot be created.
pub fn build(root: &Path, spec: &[Entry]) -> io::Result<()> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<(PathBuf, i64)> = Vec::new();
    'entries: for entry in spec {
        let path = join(root, &entry.path);
        // Skip when the path or a parent is taken by a non-directory;
        // create missing parents, with a fixed past mtime so a tool that
        // fails to restore directory mtimes is caught every time.
        let mut missing = Vec::new();
        for i in 1..=entry.path.len() {
            let prefix = join(root, &entry.path[..i]);
            match fs::symlink_metadata(&prefix) {
                Ok(md) if i == entry.path.len() || !md.is_dir() => continue 'entries,
                Ok(_) => {}
                Err(_) if i < entry.path.len() => missing.push(prefix),
                Err(_) => {}
            }
        }
        for dir in missing {
            fs::create_dir(&dir)?;
            dirs.push((dir, entry.mtime));
        }
        match &entry.kind {
            Kind::File { content, mode } => {
                fs::write(&path, content)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
                files.push(path.clone());
            }
            Kind::Dir { mode } => {
                fs::create_dir(&path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))?;
                dirs.push((path.clone(), entry.mtime));
                continue;
            }
            Kind::Symlink { target } => {
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)?;
                continue;
            }
            Kind::HardLink { to } => {
                if files.is_empty() {
                    fs::write(&path, b"first")?;
                    files.push(path.clone());
                } else {
                    fs::hard_link(&files[to % files.len()], &path)?;
                }
            }
        }
        filetime::set_file_mtime(&path, FileTime::from_unix_time(entry.mtime, 0))?;
    }
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (dir, mtime) in dirs {
        filetime::set_file_mtime(&dir, FileTime::from_unix_time(mtime, 0))?;
    }
    Ok(())
}

/// What is compared of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snap {
    /// A regular file: content, mode, mtime, and the first path (in sorted
    /// order) sharing its inode, which identifies hard-link groups.
    File {
        /// Its bytes.
        content: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Whole-second mtime.
        mtime: i64,
        /// First path of its hard-link group.
        link_group: Vec<u8>,
    },
    /// A directory: mode and mtime.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Whole-second mtime.
        mtime: i64,
    },
    /// A symbolic link and its target.
    Symlink {
        /// The target, as bytes.
        target: Vec<u8>,
    },
    /// Anything else (FIFOs, devices): its file type bits and mode.
    Other {
        /// `st_mode`.
        mode: u32,
    },
}

/// Reads the tree under `root`, keyed by relative path bytes. The root
/// itself is not included.
///
/// # Errors
///
/// When the tree cannot be read.
pub fn snapshot(root: &Path) -> io::Result<BTreeMap<Vec<u8>, Snap>> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes)?;
    // Name each hard-link group by the smallest path sharing the inode.
    let mut first: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    for (path, inode) in &inodes {
        first.entry(*inode).or_insert_with(|| path.clone());
    }
    for (path, snap) in out.iter_mut() {
        if let (Snap::File { link_group, .. }, Some(group)) =
            (snap, inodes.get(path).and_then(|inode| first.get(inode)))
        {
            link_group.clone_from(group);
        }
    }
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, Snap>,
    inodes: &mut BTreeMap<Vec<u8>, (u64, u64)>,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .map_err(io::Error::other)?
            .as_os_str()
            .as_bytes()
            .to_vec();
        let md = fs::symlink_metadata(&path)?;
        let ft = md.file_type();
        let snap = if ft.is_symlink() {
            Snap::Symlink {
                target: fs::read_link(&path)?.as_os_str().as_bytes().to_vec(),
            }
        } else if ft.is_dir() {
            walk(root, &path, out, inodes)?;
            Snap::Dir {
                mode: md.mode() & 0o7777,
                mtime: md.mtime(),
            }
        } else if ft.is_file() {
            Snap::File {
                content: fs::read(&path)?,
                mode: md.mode() & 0o7777,
                mtime: md.mtime(),
                link_group: rel.clone(),
            }
        } else {
            Snap::Other { mode: md.mode() }
        };
        if let Snap::File { .. } = snap {
            inodes.insert(rel.clone(), (md.dev(), md.ino()));
        }
        out.insert(rel, snap);
    }
    Ok(())
}

/// Asserts that two trees are identical in every compared detail, naming
/// the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = snapshot(expected).unwrap_or_else(|e| panic!("reading {}: {e}", expected.display()));
    let b = snapshot(actual).unwrap_or_else(|e| panic!("reading {}: {e}", actual.display()));
    for (path, snap) in &a {
        let shown = String::from_utf8_lossy(path);
        match b.get(path) {
            None => panic!("{shown} is missing from {}", actual.display()),
            Some(other) if other != snap => {
                panic!("{shown} differs:\n expected {snap:?}\n   actual {other:?}")
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = b.keys().find(|k| !a.contains_key(*k)) {
        panic!(
            "{} is extra in {}",
            String::from_utf8_lossy(extra),
            actual.display()
        );
    }
}

/// Writes a file at each relative path under `root` (directories made as
/// needed), holding its own path as content.
///
/// # Panics
///
/// When a file cannot be written: this is test set-up.
pub fn write_files(root: &Path, paths: &[&str]) {
    for rel in paths {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, rel).expect("write");
    }
}
