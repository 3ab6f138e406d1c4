//! Extracting a tar stream into a directory as `tar -x` does, and walking
//! one without writing anything.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::beneath::{Beneath, relative};
use super::write_err;
use crate::error::{Error, Result};
use crate::pipeline::{BLOCK, read_full};

/// Extracts a tar stream into `dir` like `tar -x`: permissions and mtimes
/// restored, owners too when running as root. Every path is resolved
/// beneath `dir` without following symbolic links ([`Beneath`]): an entry
/// with `..`, or one that would lead through a symbolic link, stops the
/// restore with [`Error::OutsideTarget`]. Directories are finished last,
/// deepest first, so read-only directories and directory mtimes come out
/// right. For an incremental `layer`, its deletion list (the first member)
/// is applied instead of written, by the same rules.
///
/// With `include` (paths as `ls` names them), only the entries at or below
/// them are written, and hard links to entries outside them are left out.
pub(crate) fn extract(
    input: &mut dyn Read,
    dir: &Path,
    layer: bool,
    include: &[String],
) -> Result<u64> {
    let mut archive = tar::Archive::new(input);
    let chown = is_root();
    fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let mut target = Beneath::new(dir).map_err(|e| write_err(dir, e))?;
    let fail = |rel: &Path, e: io::Error| match crate::error::recover(e) {
        Ok(err) => err,
        Err(e) => write_err(&dir.join(rel), e),
    };
    let mut buf = vec![0u8; BLOCK];
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    let mut entries = 0u64;
    for entry in archive.entries().map_err(|e| fail(Path::new(""), e))? {
        let mut entry = entry.map_err(|e| fail(Path::new(""), e))?;
        entries += 1;
        let name = entry.path_bytes().into_owned();
        if layer && name == crate::incremental::DELETED_MEMBER.as_bytes() {
            let mut list = Vec::new();
            entry
                .read_to_end(&mut list)
                .map_err(|e| fail(Path::new(""), e))?;
            for gone in deletions(&list) {
                let rel = relative(gone)?;
                if !rel.as_os_str().is_empty() {
                    target.remove(&rel).map_err(|e| fail(&rel, e))?;
                }
            }
            continue;
        }
        let rel = relative(&name)?;
        let kind = entry.header().entry_type();
        let link = match entry.link_name_bytes() {
            Some(l) if kind.is_hard_link() => Some(relative(&l)?),
            _ => None,
        };
        if !include.is_empty() {
            let wanted = |name: &[u8]| {
                let name = crate::index::display_name(name);
                include.iter().any(|i| crate::index::is_under(&name, i))
            };
            let link_outside =
                kind.is_hard_link() && entry.link_name_bytes().is_some_and(|l| !wanted(&l));
            if !wanted(&name) || link_outside {
                continue;
            }
        }
        let written = match kind {
            tar::EntryType::Directory => {
                dirs.push((rel.clone(), entry.header().clone()));
                target.mkdir(&rel)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                write_file(&mut target, &rel, &mut entry, &mut buf, chown)
            }
            tar::EntryType::Link => match &link {
                Some(to) => target.link(to, &rel),
                None => Ok(()),
            },
            tar::EntryType::Symlink => symlink(&mut target, &rel, &entry, chown),
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                special(&mut target, &rel, entry.header(), chown)
            }
            // Long names and PAX records are read by the tar crate; other
            // kinds are not files.
            _ => Ok(()),
        };
        written.map_err(|e| fail(&rel, e))?;
    }
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (rel, header) in &dirs {
        let stamped = match target.open_dir(rel) {
            Ok(Some(handle)) => stamp(&handle, header, chown),
            Ok(None) => Ok(()), // replaced by a later entry; nothing to stamp
            Err(e) => Err(e),
        };
        stamped.map_err(|e| fail(rel, e))?;
    }
    Ok(entries)
}

/// The paths an incremental layer's deletion list names.
fn deletions(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == 0).filter(|n| !n.is_empty())
}

fn mtime(header: &tar::Header) -> Option<rustix::fs::Timestamps> {
    let at = rustix::fs::Timespec {
        tv_sec: i64::try_from(header.mtime().ok()?).ok()?,
        tv_nsec: 0,
    };
    Some(rustix::fs::Timestamps {
        last_access: at,
        last_modification: at,
    })
}

fn owner(header: &tar::Header) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    let id = |v: io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok());
    (
        id(header.uid()).map(rustix::fs::Uid::from_raw),
        id(header.gid()).map(rustix::fs::Gid::from_raw),
    )
}

/// Sets an open file's or directory's owner (as root), mode and mtime.
fn stamp(handle: &File, header: &tar::Header, chown: bool) -> io::Result<()> {
    if chown {
        let (uid, gid) = owner(header);
        rustix::fs::fchown(handle, uid, gid)?;
    }
    if let Ok(mode) = header.mode() {
        rustix::fs::fchmod(handle, rustix::fs::Mode::from_raw_mode(mode & 0o7777))?;
    }
    if let Some(times) = mtime(header) {
        rustix::fs::futimens(handle, &times)?;
    }
    Ok(())
}

/// Writes a regular file with large writes.
fn write_file(
    target: &mut Beneath,
    rel: &Path,
    entry: &mut tar::Entry<'_, impl Read>,
    buf: &mut [u8],
    chown: bool,
) -> io::Result<()> {
    let Some(mut file) = target.create_file(rel)? else {
        return Ok(()); // a file entry naming the target itself
    };
    loop {
        let n = read_full(entry, buf)?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
    }
    stamp(&file, entry.header(), chown)
}

/// Makes a symbolic link (never followed by anything the restore does).
fn symlink(
    target: &mut Beneath,
    rel: &Path,
    entry: &tar::Entry<'_, impl Read>,
    chown: bool,
) -> io::Result<()> {
    let Some(to) = entry.link_name_bytes() else {
        return Ok(());
    };
    let header = entry.header();
    target.replace(rel, |dir, name| {
        rustix::fs::symlinkat(std::ffi::OsStr::from_bytes(&to), dir, name)?;
        finish_at(dir, name, header, chown, None)
    })
}

/// Creates a FIFO or device node (devices need root, like `tar -x`).
fn special(target: &mut Beneath, rel: &Path, header: &tar::Header, chown: bool) -> io::Result<()> {
    use rustix::fs::{FileType, Mode};
    let kind = match header.entry_type() {
        tar::EntryType::Char => FileType::CharacterDevice,
        tar::EntryType::Block => FileType::BlockDevice,
        _ => FileType::Fifo,
    };
    let dev = rustix::fs::makedev(
        header.device_major().ok().flatten().unwrap_or(0),
        header.device_minor().ok().flatten().unwrap_or(0),
    );
    let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
    target.replace(rel, |dir, name| {
        rustix::fs::mknodat(dir, name, kind, mode, dev)?;
        finish_at(dir, name, header, chown, Some(mode))
    })
}

/// Owner, mode (mknod applies the umask; links have none) and mtime of a
/// name just made in `dir`, without following it.
fn finish_at(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    header: &tar::Header,
    chown: bool,
    mode: Option<rustix::fs::Mode>,
) -> io::Result<()> {
    use rustix::fs::AtFlags;
    if let Some(mode) = mode {
        rustix::fs::chmodat(dir, name, mode, AtFlags::empty())?;
    }
    if chown {
        let (uid, gid) = owner(header);
        rustix::fs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    if let Some(times) = mtime(header) {
        rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

/// The checks a restore makes of every entry, made without writing
/// anything (by verify and import): no `..`, and nothing through a path
/// that an earlier entry (of this archive or an earlier layer) made a
/// symbolic link. Symbolic links are remembered as 8-byte hashes.
#[derive(Debug, Default)]
pub(crate) struct EntryCheck {
    links: HashSet<u64>,
}

impl EntryCheck {
    fn key(rel: &Path) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        rel.as_os_str().as_bytes().hash(&mut h);
        h.finish()
    }

    fn beneath(&self, rel: &Path) -> Result<()> {
        let through = rel
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .any(|a| self.links.contains(&Self::key(a)));
        if through {
            return Err(Error::OutsideTarget {
                entry: rel.display().to_string(),
                reason: "it leads through a symbolic link",
            });
        }
        Ok(())
    }

    /// One entry of the archive.
    fn entry(&mut self, name: &[u8], kind: tar::EntryType, link: Option<&[u8]>) -> Result<()> {
        let rel = relative(name)?;
        self.beneath(&rel)?;
        if let Some(link) = link.filter(|_| kind.is_hard_link()) {
            self.beneath(&relative(link)?)?;
        }
        if kind.is_symlink() {
            self.links.insert(Self::key(&rel));
        } else {
            self.links.remove(&Self::key(&rel));
        }
        Ok(())
    }

    /// One path an incremental layer deletes.
    fn deletion(&mut self, name: &[u8]) -> Result<()> {
        let rel = relative(name)?;
        self.beneath(&rel)?;
        self.links.remove(&Self::key(&rel));
        Ok(())
    }
}

/// Walks a tar stream without writing anything, making `checks` of every
/// entry (and, for an incremental `layer`, of its deletion list); returns
/// the entry count.
pub(crate) fn check_tar(input: &mut dyn Read, checks: &mut EntryCheck, layer: bool) -> Result<u64> {
    let mut archive = tar::Archive::new(input);
    let mut entries = 0u64;
    let fail = |e: io::Error| {
        crate::error::recover(e).unwrap_or_else(|e| Error::Interrupted(format!("tar: {e}")))
    };
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let name = entry.path_bytes().into_owned();
        if layer && name == crate::incremental::DELETED_MEMBER.as_bytes() {
            let mut list = Vec::new();
            entry.read_to_end(&mut list).map_err(fail)?;
            for gone in deletions(&list) {
                checks.deletion(gone)?;
            }
        } else {
            let kind = entry.header().entry_type();
            checks.entry(&name, kind, entry.link_name_bytes().as_deref())?;
            io::copy(&mut entry, &mut io::sink()).map_err(fail)?;
        }
        entries += 1;
    }
    Ok(entries)
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self").is_ok_and(|md| std::os::unix::fs::MetadataExt::uid(&md) == 0)
}
