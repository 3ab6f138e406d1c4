//! Extracting a tar stream into a directory as `tar -x` does, and walking
//! one without writing anything.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::write_err;
use crate::error::{Error, Result};
use crate::pipeline::{BLOCK, read_full};

/// Extracts a tar stream into `dir` like `tar -x`: permissions and mtimes
/// restored, owners too when running as root, entries with `..` skipped and
/// paths that would lead outside `dir` through a symbolic link refused.
/// Directories are finished last, deepest first, so read-only directories
/// and directory mtimes come out right.
/// Extracts a tar stream into `dir`. For an incremental `layer`, its
/// deletion list (the first member) is applied instead of written.
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
    let root_user = is_root();
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(root_user);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    let fail = |e: io::Error| match crate::error::recover(e) {
        Ok(err) => err,
        Err(e) => write_err(dir, e),
    };
    fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let mut files = FileWriter {
        root: fs::canonicalize(dir).map_err(|e| write_err(dir, e))?,
        inside: HashSet::new(),
        buf: vec![0u8; BLOCK],
        chown: root_user,
    };
    let mut dirs = Vec::new();
    let mut entries = 0u64;
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        entries += 1;
        if layer && entry.path_bytes().as_ref() == crate::incremental::DELETED_MEMBER.as_bytes() {
            let mut list = Vec::new();
            entry.read_to_end(&mut list).map_err(fail)?;
            crate::incremental::apply_deletions(&files.root, &list).map_err(fail)?;
            files.inside.clear();
            continue;
        }
        if !include.is_empty() {
            let wanted = |name: &[u8]| {
                let name = crate::index::display_name(name);
                include.iter().any(|i| crate::index::is_under(&name, i))
            };
            let link_outside = entry.header().entry_type().is_hard_link()
                && entry.link_name_bytes().is_some_and(|l| !wanted(&l));
            if !wanted(&entry.path_bytes()) || link_outside {
                continue;
            }
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => dirs.push(entry),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                files.write(&mut entry).map_err(fail)?;
            }
            // The tar crate would make these empty regular files.
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                files.special(&entry).map_err(fail)?;
            }
            _ => {
                // Links and special files can change what a path resolves
                // to: forget which directories were checked.
                files.inside.clear();
                if entry.header().entry_type().is_hard_link() {
                    // Over an earlier layer (or with --force), the link's
                    // path may exist: replace it, as `tar -x` does.
                    if let Some(dst) = inside(&files.root, &entry).map_err(fail)? {
                        if fs::symlink_metadata(&dst).is_ok_and(|md| !md.is_dir()) {
                            fs::remove_file(&dst).map_err(|e| write_err(&dst, e))?;
                        }
                    }
                }
                entry.unpack_in(&files.root).map_err(fail)?;
            }
        }
    }
    dirs.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    // Two passes: create every directory (and set its mode), then stamp
    // mtimes once nothing more can be created inside any of them.
    let mut stamps = Vec::with_capacity(dirs.len());
    for mut d in dirs {
        // `unpack_in` skips `./` (the target itself) and never sets a
        // directory's mtime; `tar -x` does both.
        let Some(path) = inside(&files.root, &d).map_err(fail)? else {
            continue;
        };
        if path != files.root {
            d.unpack_in(&files.root).map_err(fail)?;
        }
        stamps.push((path, d.header().clone()));
    }
    for (path, header) in &stamps {
        apply_dir_metadata(path, header).map_err(|e| write_err(path, e))?;
    }
    Ok(entries)
}

/// Where an entry goes under `root`, or `None` for entries with `..`
/// (which are skipped, like `tar::Entry::unpack_in` does).
fn inside(root: &Path, entry: &tar::Entry<'_, impl Read>) -> io::Result<Option<PathBuf>> {
    let mut dst = root.to_path_buf();
    for part in entry.path()?.components() {
        match part {
            Component::Normal(p) => dst.push(p),
            Component::ParentDir => return Ok(None),
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
        }
    }
    Ok(Some(dst))
}

fn apply_dir_metadata(dir: &Path, header: &tar::Header) -> io::Result<()> {
    if fs::symlink_metadata(dir).is_ok_and(|md| !md.is_dir()) {
        return Ok(()); // replaced by a later entry; nothing to stamp
    }
    let handle = File::open(dir)?;
    if let Ok(mtime) = header.mtime() {
        handle.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))?;
    }
    if let Ok(mode) = header.mode() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

/// Writes regular files with large writes, applying the same safety rules
/// as `tar::Entry::unpack_in` but checking each directory once rather than
/// resolving every file's full path.
struct FileWriter {
    /// The canonical target directory.
    root: PathBuf,
    /// Directories already known to resolve inside `root`.
    inside: HashSet<PathBuf>,
    buf: Vec<u8>,
    chown: bool,
}

impl FileWriter {
    /// Where `entry` goes, once its parent directory exists and is known to
    /// be inside the target; `None` for entries that are skipped.
    fn place(&mut self, entry: &tar::Entry<'_, impl Read>) -> io::Result<Option<PathBuf>> {
        let Some(dst) = inside(&self.root, entry)? else {
            return Ok(None);
        };
        let Some(parent) = dst.parent().filter(|_| dst != self.root) else {
            return Ok(None);
        };
        if !self.inside.contains(parent) {
            fs::create_dir_all(parent)?;
            if !fs::canonicalize(parent)?.starts_with(&self.root) {
                return Err(io::Error::other(format!(
                    "{} would be written outside the target through a symbolic link",
                    dst.display()
                )));
            }
            self.inside.insert(parent.to_owned());
        }
        Ok(Some(dst))
    }

    fn write(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> io::Result<()> {
        let Some(dst) = self.place(entry)? else {
            return Ok(());
        };
        let create = || File::options().write(true).create_new(true).open(&dst);
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Never write through whatever is there (it may be a link).
                fs::remove_file(&dst)?;
                create()?
            }
            other => other?,
        };
        loop {
            let n = read_full(entry, &mut self.buf)?;
            if n == 0 {
                break;
            }
            file.write_all(&self.buf[..n])?;
        }
        let header = entry.header();
        if self.chown {
            std::os::unix::fs::fchown(
                &file,
                header.uid().ok().map(|u| u as u32),
                header.gid().ok().map(|g| g as u32),
            )?;
        }
        if let Ok(mode) = header.mode() {
            file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
        }
        if let Ok(mtime) = header.mtime() {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
            file.set_modified(when)?;
        }
        Ok(())
    }

    /// Creates a FIFO or device node (devices need root, like `tar -x`).
    fn special(&mut self, entry: &tar::Entry<'_, impl Read>) -> io::Result<()> {
        use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};
        let Some(dst) = self.place(entry)? else {
            return Ok(());
        };
        let header = entry.header();
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
        if fs::symlink_metadata(&dst).is_ok_and(|md| !md.is_dir()) {
            fs::remove_file(&dst)?;
        }
        rustix::fs::mknodat(CWD, &dst, kind, mode, dev)?;
        // mknod applies the umask; set the archived bits exactly.
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode.as_raw_mode()))?;
        if self.chown {
            std::os::unix::fs::lchown(
                &dst,
                header.uid().ok().map(|u| u as u32),
                header.gid().ok().map(|g| g as u32),
            )?;
        }
        if let Ok(mtime) = header.mtime() {
            let at = Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            };
            let times = Timestamps {
                last_access: at,
                last_modification: at,
            };
            rustix::fs::utimensat(CWD, &dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
        Ok(())
    }
}

/// Walks a tar stream without writing anything; returns its entry count.
pub(crate) fn check_tar(input: &mut dyn Read) -> Result<u64> {
    let mut archive = tar::Archive::new(input);
    let mut entries = 0u64;
    let fail = |e: io::Error| {
        crate::error::recover(e).unwrap_or_else(|e| Error::Interrupted(format!("tar: {e}")))
    };
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        io::copy(&mut entry, &mut io::sink()).map_err(fail)?;
        entries += 1;
    }
    Ok(entries)
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    fs::metadata("/proc/self").is_ok_and(|md| std::os::unix::fs::MetadataExt::uid(&md) == 0)
}
