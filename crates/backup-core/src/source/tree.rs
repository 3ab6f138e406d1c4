//! A directory tree as a GNU tar stream.
//!
//! Entries are named `./relative/path`, in sorted order, like
//! `tar -C DIR -cf - .`, so the stream extracts with any tar. Kept: regular
//! files, directories (empty ones too), symbolic links (never followed),
//! hard links (as link entries to the first path seen), FIFOs and device
//! nodes, permissions, owner ids and mtimes (whole seconds). Names of any
//! length and any bytes (GNU long-name entries), files of any size (GNU
//! base-256 size field above 8 GiB). Sockets are skipped with a warning.
//!
//! A file that shrinks while it is read is padded with zeros to the size
//! recorded in its header, and a warning says so; one that grows is stored
//! up to that size. Either way the archive stays well-formed.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use tar::{EntryType, Header, HeaderMode};
use walkdir::WalkDir;

use super::{Filter, ReadOptions, Walk};
use crate::error::{Error, Result};
use crate::incremental::archive_name;
use crate::sink::{CopyError, Sink, classify};

/// Files up to this size are read ahead by the walker thread.
const PREFETCH_MAX: u64 = 64 << 10;
/// The walker hands over entries in batches of up to this many entries or
/// [`BATCH_BYTES`] of prefetched data, so threads meet once per batch, not
/// once per file.
const BATCH_ITEMS: usize = 64;
const BATCH_BYTES: usize = 256 << 10;
/// Batches the walker may run ahead: at most about 1.3 MiB of read-ahead.
const AHEAD: usize = 4;

/// One archive entry, found (and for small files, read) by the walker.
enum Item {
    Dir {
        name: PathBuf,
        md: Metadata,
    },
    File {
        name: PathBuf,
        md: Metadata,
        path: PathBuf,
        body: Body,
    },
    HardLink {
        name: PathBuf,
        md: Metadata,
        first: PathBuf,
    },
    Symlink {
        name: PathBuf,
        md: Metadata,
        target: PathBuf,
    },
    Special {
        name: PathBuf,
        md: Metadata,
    },
    Socket {
        path: PathBuf,
    },
    Failed {
        path: PathBuf,
        err: io::Error,
    },
}

enum Body {
    /// The whole content, read ahead (shorter than the size if the file
    /// shrank meanwhile).
    Read(Vec<u8>),
    /// An open file, read by the archive writer straight into the pipeline.
    Open(File),
    /// Not opened: an incremental's parent has it with the same metadata.
    Unchanged,
}

/// Streams the tree under `root` as a tar archive into `out` and returns the
/// number of entries written.
///
/// Two threads: a walker lists the tree, stats every entry, opens files and
/// reads small ones ahead; this thread writes headers and bodies. On a tree
/// of many small files the system calls would otherwise leave the
/// compressors waiting.
pub(crate) fn write_tar(root: &Path, out: &mut dyn Sink, opts: &ReadOptions<'_>) -> Result<u64> {
    let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("shipshape-walk".into())
            .spawn_scoped(scope, || walk(root, tx, opts.tracker, opts.filter))
            .map_err(|e| Error::Interrupted(format!("cannot start the walker thread: {e}")))?;
        let mut entries = 0;
        if let Some(tracker) = opts.tracker.filter(|t| t.incremental()) {
            let present = Walk::new(root, opts.filter)
                .filter_map(|found| Some((found.path, found.md.ok()?.file_type())));
            write_deletions(out, &tracker.deletions(root, present))?;
            entries += 1;
        }
        Ok(entries + archive(rx, out, opts)?)
    })
}

/// Writes the list of paths an incremental layer removes, NUL-separated,
/// as its first member ([`crate::incremental::DELETED_MEMBER`]).
fn write_deletions(out: &mut dyn Sink, names: &[Vec<u8>]) -> Result<()> {
    let mut body = Vec::new();
    for n in names {
        body.extend_from_slice(n);
        body.push(0);
    }
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(body.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    write_header(
        out,
        &mut header,
        crate::incremental::DELETED_MEMBER.as_bytes(),
        None,
    )?;
    out.write_all(&body).map_err(write_err)?;
    let pad = (512 - body.len() % 512) % 512;
    out.write_all(&[0u8; 512][..pad]).map_err(write_err)
}

/// Lists `root` in sorted order, leaving out what `filter` says, and sends
/// its items in batches, stopping when the receiver is gone.
fn walk(
    root: &Path,
    tx: SyncSender<Vec<Item>>,
    tracker: Option<&crate::incremental::Tracker>,
    filter: &Filter,
) {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let (mut batch, mut bytes) = (Vec::with_capacity(BATCH_ITEMS), 0usize);
    for found in Walk::new(root, filter) {
        let path = if found.path.as_os_str().is_empty() {
            root
        } else {
            &found.path
        };
        let item = describe(root, path, found.md, &mut links, tracker);
        if let Item::File {
            body: Body::Read(data),
            ..
        } = &item
        {
            bytes += data.len();
        }
        batch.push(item);
        if batch.len() == BATCH_ITEMS || bytes >= BATCH_BYTES {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
            bytes = 0;
            if tx.send(full).is_err() {
                return;
            }
        }
    }
    let _ = tx.send(batch);
}

fn describe(
    root: &Path,
    path: &Path,
    md: io::Result<Metadata>,
    links: &mut HashMap<(u64, u64), PathBuf>,
    tracker: Option<&crate::incremental::Tracker>,
) -> Item {
    let failed = |err: io::Error| Item::Failed {
        path: path.to_owned(),
        err,
    };
    let md = match md {
        Ok(md) => md,
        Err(e) => return failed(e),
    };
    let ft = md.file_type();
    let name = archive_name(root, path, ft.is_dir());
    if ft.is_file() {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            let first = first.clone();
            return Item::HardLink { name, md, first };
        }
        if tracker.is_some_and(|t| t.unchanged(name.as_os_str().as_bytes(), &md)) {
            if md.nlink() > 1 {
                links.insert((md.dev(), md.ino()), name.clone());
            }
            return Item::File {
                name,
                md,
                path: path.to_owned(),
                body: Body::Unchanged,
            };
        }
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) => return failed(e),
        };
        if md.nlink() > 1 {
            links.insert((md.dev(), md.ino()), name.clone());
        }
        let body = if md.len() <= PREFETCH_MAX {
            let mut data = Vec::with_capacity(md.len() as usize);
            match (&mut file).take(md.len()).read_to_end(&mut data) {
                Ok(_) => Body::Read(data),
                Err(e) => return failed(e),
            }
        } else {
            Body::Open(file)
        };
        Item::File {
            name,
            md,
            path: path.to_owned(),
            body,
        }
    } else if ft.is_dir() {
        Item::Dir { name, md }
    } else if ft.is_symlink() {
        match fs::read_link(path) {
            Ok(target) => Item::Symlink { name, md, target },
            Err(e) => failed(e),
        }
    } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
        Item::Special { name, md }
    } else {
        Item::Socket {
            path: path.to_owned(),
        }
    }
}

/// Writes the walker's items as tar entries.
fn archive(
    batches: Receiver<Vec<Item>>,
    out: &mut dyn Sink,
    opts: &ReadOptions<'_>,
) -> Result<u64> {
    let mut entries = 0u64;
    for item in batches.into_iter().flatten() {
        let (name, md) = match &item {
            Item::Dir { name, md }
            | Item::File { name, md, .. }
            | Item::HardLink { name, md, .. }
            | Item::Symlink { name, md, .. }
            | Item::Special { name, md } => (name.as_os_str().as_bytes(), md),
            Item::Socket { path } => {
                (opts.warn)(format!(
                    "skipped {}: sockets and other special files cannot be archived",
                    path.display()
                ));
                continue;
            }
            Item::Failed { .. } => {
                if let Item::Failed { path, err } = item {
                    skip_or_fail(opts, &path, err)?;
                }
                continue;
            }
        };
        if let Some(tracker) = opts.tracker {
            let kind = match &item {
                Item::Dir { .. } => 'd',
                Item::File { .. } => 'f',
                Item::HardLink { .. } => 'h',
                Item::Symlink { .. } => 'l',
                _ => 's',
            };
            let entry = crate::incremental::Entry::new(name, kind, md);
            let mut content = || match &item {
                Item::File {
                    body: Body::Read(data),
                    ..
                } => Ok(data.clone()),
                Item::File { path, .. } => fs::read(path),
                _ => Ok(Vec::new()),
            };
            match tracker.track(entry, &mut content) {
                Ok(crate::incremental::Verdict::Skip) => continue,
                Ok(crate::incremental::Verdict::Archive) => {}
                Err(err) => {
                    if let Item::File { path, .. } = &item {
                        skip_or_fail(opts, path, err)?;
                        continue;
                    }
                }
            }
        }
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(md, HeaderMode::Complete);
        header.set_mode(md.mode() & 0o7777);
        header.set_mtime(md.mtime().max(0) as u64);
        match &item {
            Item::File { md, .. } => header.set_size(md.len()),
            Item::Dir { .. } => header.set_size(0),
            Item::HardLink { .. } => {
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
            }
            Item::Symlink { .. } => header.set_size(0),
            Item::Special { md, .. } => {
                header.set_size(0);
                if !md.file_type().is_fifo() {
                    let (major, minor) = dev_numbers(md.rdev());
                    header.set_device_major(major).map_err(write_err)?;
                    header.set_device_minor(minor).map_err(write_err)?;
                }
            }
            Item::Socket { .. } | Item::Failed { .. } => {}
        }
        let link = match &item {
            Item::HardLink { first, .. } => Some(first.as_os_str().as_bytes()),
            Item::Symlink { target, .. } => Some(target.as_os_str().as_bytes()),
            _ => None,
        };
        if let Some(index) = opts.index {
            let offset = out.written().unwrap_or(0);
            index.record(&index_entry(&item, name, md, link), offset)?;
        }
        write_header(out, &mut header, name, link)?;
        if let Item::File { md, path, body, .. } = item {
            write_body(body, md.len(), out, &path, opts)?;
        }
        entries += 1;
    }
    // The end of the archive: two zero blocks.
    out.write_all(&[0u8; 1024]).map_err(write_err)?;
    Ok(entries)
}

/// The index's view of an item about to be archived.
fn index_entry(
    item: &Item,
    name: &[u8],
    md: &Metadata,
    link: Option<&[u8]>,
) -> crate::index::Entry {
    use crate::index::Kind;
    let kind = match item {
        Item::Dir { .. } => Kind::Dir,
        Item::File { .. } => Kind::File,
        Item::HardLink { .. } => Kind::Hardlink,
        Item::Symlink { .. } => Kind::Symlink,
        Item::Special { md, .. } if md.file_type().is_fifo() => Kind::Fifo,
        Item::Special { md, .. } if md.file_type().is_char_device() => Kind::Char,
        Item::Special { .. } => Kind::Block,
        Item::Socket { .. } | Item::Failed { .. } => Kind::Other,
    };
    crate::index::Entry {
        path: crate::index::display_name(name),
        kind,
        size: if kind == Kind::File { md.len() } else { 0 },
        mode: md.mode() & 0o7777,
        mtime: md.mtime(),
        link: link.map(|l| match kind {
            Kind::Hardlink => crate::index::display_name(l),
            _ => String::from_utf8_lossy(l).into_owned(),
        }),
        offset: 0,
    }
}

/// Writes `header` with `name` (and `link`, for links) exactly as given:
/// values that do not fit the 100-byte fields go first into GNU long-name
/// (`L`) and long-link (`K`) entries, as GNU tar writes them.
///
/// The tar crate's own path setters are not used: they drop the leading
/// `./` from names that fit the header but keep it in long-name entries,
/// and GNU tar, which matches directory prefixes textually when it restores
/// directory mtimes, then stamps a directory before its long-named children
/// are created in it.
fn write_header(
    out: &mut dyn Sink,
    header: &mut Header,
    name: &[u8],
    link: Option<&[u8]>,
) -> Result<()> {
    if let Some(link) = link {
        if link.len() > 100 {
            write_long_entry(out, EntryType::GNULongLink, link)?;
        }
        fill(&mut header.as_old_mut().linkname, link);
    }
    if name.len() > 100 {
        write_long_entry(out, EntryType::GNULongName, name)?;
    }
    fill(&mut header.as_old_mut().name, name);
    header.set_cksum();
    out.write_all(header.as_bytes()).map_err(write_err)
}

/// Puts as much of `value` as fits into a NUL-padded header field.
fn fill(field: &mut [u8; 100], value: &[u8]) {
    let n = value.len().min(field.len());
    field.fill(0);
    field[..n].copy_from_slice(&value[..n]);
}

/// A GNU `././@LongLink` entry carrying `value` (NUL-terminated).
fn write_long_entry(out: &mut dyn Sink, kind: EntryType, value: &[u8]) -> Result<()> {
    let mut header = Header::new_gnu();
    fill(&mut header.as_old_mut().name, b"././@LongLink");
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(value.len() as u64 + 1);
    header.set_entry_type(kind);
    header.set_cksum();
    out.write_all(header.as_bytes()).map_err(write_err)?;
    out.write_all(value).map_err(write_err)?;
    // The terminating NUL, then padding to the block boundary.
    let pad = (512 - (value.len() + 1) % 512) % 512;
    out.write_all(&[0u8; 512][..1 + pad]).map_err(write_err)
}

/// Copies exactly `size` bytes of the file into the archive and pads to the
/// 512-byte block boundary.
fn write_body(
    body: Body,
    size: u64,
    out: &mut dyn Sink,
    path: &Path,
    opts: &ReadOptions<'_>,
) -> Result<()> {
    let mut left = size;
    let body = match body {
        Body::Unchanged => match File::open(path) {
            Ok(file) => Body::Open(file),
            // The header is written: the body must follow.
            Err(e) => return Err(crate::error::source_err(path, e)),
        },
        other => other,
    };
    match body {
        Body::Read(data) => {
            out.write_all(&data).map_err(write_err)?;
            left -= data.len() as u64;
        }
        Body::Unchanged => {}
        Body::Open(mut file) => {
            while left > 0 {
                let n = match out.read_from(&mut file, left) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(classify(e).into_error(&path.display().to_string())),
                };
                left -= n as u64;
            }
        }
    }
    if left > 0 {
        (opts.warn)(format!(
            "{} shrank while it was read ({} of {size} bytes); the missing bytes were stored as zeros",
            path.display(),
            size - left
        ));
        let zeros = [0u8; 4096];
        while left > 0 {
            let n = zeros.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            out.write_all(&zeros[..n]).map_err(write_err)?;
            left -= n as u64;
        }
    }
    let pad = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
        .map_err(write_err)
}

fn skip_or_fail(opts: &ReadOptions<'_>, path: &Path, err: io::Error) -> Result<()> {
    if opts.skip_unreadable {
        (opts.warn)(format!("skipped {}: {err}", path.display()));
        Ok(())
    } else {
        Err(Error::Source {
            what: format!(
                "{} (pass --skip-unreadable to back up the rest and record a warning)",
                path.display()
            ),
            source: err,
        })
    }
}

fn write_err(e: io::Error) -> Error {
    CopyError::Write(e).into_error("")
}

/// Splits a Linux `dev_t` into major and minor numbers (glibc's encoding).
fn dev_numbers(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// What a directory backup walks: a directory, or several files and
/// directories below their deepest common directory.
pub(crate) struct Selection {
    /// Where the walk starts; archive names are relative to it.
    pub root: PathBuf,
    /// What is backed up below it (the root itself, for one directory).
    pub paths: Vec<PathBuf>,
}

impl Selection {
    /// One directory, as given.
    pub(crate) fn directory(dir: &Path) -> Selection {
        Selection {
            root: dir.to_path_buf(),
            paths: vec![dir.to_path_buf()],
        }
    }

    /// Several paths, made absolute with links resolved, below their
    /// deepest common directory.
    pub(crate) fn of(paths: &[PathBuf]) -> Result<Selection> {
        let mut real = Vec::with_capacity(paths.len());
        for p in paths {
            real.push(fs::canonicalize(p).map_err(|e| crate::error::source_err(p, e))?);
        }
        let mut root = real.first().cloned().unwrap_or_else(|| PathBuf::from("/"));
        for p in &real[1..] {
            while !p.starts_with(&root) {
                if !root.pop() {
                    break;
                }
            }
        }
        if !root.is_dir() {
            root.pop();
        }
        // Sorted by components, a path's descendants follow it.
        real.sort();
        real.dedup_by(|later, kept| later.starts_with(kept));
        Ok(Selection { root, paths: real })
    }

    /// The paths relative to the root, for the manifest (empty for one
    /// directory).
    pub(crate) fn relative(&self) -> Vec<String> {
        if self.paths.len() == 1 && self.paths[0] == self.root {
            return Vec::new();
        }
        self.paths
            .iter()
            .map(|p| {
                let rel = p.strip_prefix(&self.root).unwrap_or(p);
                match rel.as_os_str().is_empty() {
                    true => ".".to_owned(),
                    false => rel.to_string_lossy().into_owned(),
                }
            })
            .collect()
    }
}

/// Sum of regular file sizes under `root`, for progress estimates.
pub(crate) fn estimate(root: &Path) -> u64 {
    WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|md| md.is_file())
        .map(|md| md.len().div_ceil(512) * 512 + 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(8, 1) and makedev(259, 70000)
        assert_eq!(dev_numbers(0x801), (8, 1));
        let dev = (259u64 & 0xfff) << 8 | (70000u64 & 0xff) | ((70000u64 & !0xff) << 12);
        assert_eq!(dev_numbers(dev), (259, 70000));
    }

    #[test]
    fn names_are_dot_relative() {
        let root = Path::new("/srv/data");
        assert_eq!(archive_name(root, root, true), PathBuf::from("./"));
        let name = |p: &str, dir| archive_name(root, Path::new(p), dir);
        assert_eq!(
            name("/srv/data/a/b", false).as_os_str().as_bytes(),
            b"./a/b"
        );
        assert_eq!(
            name("/srv/data/a/b", true).as_os_str().as_bytes(),
            b"./a/b/"
        );
    }
}
