//! Where restored data goes, and the sinks that put it there.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::manifest::{Manifest, Payload, SourceInfo};
use crate::pipeline::{BLOCK, unwrap_io};
use crate::progress::{NoProgress, Progress};

/// Where to restore a backup.
pub enum RestoreTarget {
    /// A path. Directory backups are extracted into it (created if missing).
    /// Other backups are written to it as a file, or into it under the
    /// source's file name when it is an existing directory.
    Path(PathBuf),
    /// A stream, such as standard output: the plaintext as it was backed up
    /// (a tar archive for directory backups).
    Writer(Box<dyn Write + Send>),
}

impl fmt::Debug for RestoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreTarget::Path(p) => f.debug_tuple("Path").field(p).finish(),
            RestoreTarget::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore over a non-empty directory or an existing file.
    pub force: bool,
    /// Receives progress.
    pub progress: Arc<dyn Progress>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            force: false,
            progress: Arc::new(NoProgress),
        }
    }
}

impl RestoreOptions {
    /// Restore over existing data.
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Report progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Where the data went (a path, or `-` for a stream).
    pub target: String,
    /// Plaintext bytes restored.
    pub bytes: u64,
    /// Archive entries extracted, for directory backups restored to a path.
    pub entries: Option<u64>,
}

/// Where the sink writes, decided before any data flows so that target
/// problems are reported before the download starts.
pub(crate) enum Plan {
    /// Extract into `dir`; when `staging` is set, extract there and rename it
    /// to `dir` once everything checked out.
    Extract {
        dir: PathBuf,
        staging: Option<PathBuf>,
    },
    /// Write a file via a temporary file renamed over `file` at the end.
    File { file: PathBuf, temp: PathBuf },
    /// Copy to a stream.
    Stream(Box<dyn Write + Send>),
}

impl Plan {
    pub(crate) fn new(m: &Manifest, target: RestoreTarget, force: bool) -> Result<Plan> {
        let path = match target {
            RestoreTarget::Writer(w) => return Ok(Plan::Stream(w)),
            RestoreTarget::Path(p) => p,
        };
        let target_err = |problem: String| Error::Target {
            path: path.clone(),
            problem,
        };
        let existing = match fs::metadata(&path) {
            Ok(md) => Some(md),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(target_err(e.to_string())),
        };
        match (m.payload, existing) {
            (Payload::Tar, None) => {
                let staging = sibling(&path, "restore");
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|e| {
                        target_err(format!("cannot create its parent directory: {e}"))
                    })?;
                }
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&staging)
                    .map_err(|e| {
                        target_err(format!("cannot create a directory next to it: {e}"))
                    })?;
                Ok(Plan::Extract {
                    dir: path,
                    staging: Some(staging),
                })
            }
            (Payload::Tar, Some(md)) if md.is_dir() => {
                let empty = fs::read_dir(&path)
                    .map_err(|e| target_err(e.to_string()))?
                    .next()
                    .is_none();
                if !empty && !force {
                    return Err(target_err(
                        "is not empty; restore into a new or empty directory, or pass --force \
                         to restore over what is there"
                            .into(),
                    ));
                }
                Ok(Plan::Extract {
                    dir: path,
                    staging: None,
                })
            }
            (Payload::Tar, Some(_)) => Err(target_err(
                "is a file, but this backup is a directory tree; give a directory path".into(),
            )),
            (Payload::Raw, existing) => {
                let file = match existing {
                    Some(md) if md.is_dir() => path.join(file_name(m)),
                    _ => path.clone(),
                };
                let file_err = |problem: String| Error::Target {
                    path: file.clone(),
                    problem,
                };
                match fs::symlink_metadata(&file) {
                    Ok(md) if md.is_dir() => {
                        return Err(file_err("is a directory".into()));
                    }
                    Ok(md) if md.len() > 0 && !force => {
                        return Err(file_err(
                            "already exists; pass --force to replace it".into(),
                        ));
                    }
                    _ => {}
                }
                if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(|e| {
                        file_err(format!("cannot create its parent directory: {e}"))
                    })?;
                }
                let temp = sibling(&file, "partial");
                Ok(Plan::File { file, temp })
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Plan::Extract { dir, .. } => dir.display().to_string(),
            Plan::File { file, .. } => file.display().to_string(),
            Plan::Stream(_) => "-".into(),
        }
    }

    /// The sink: runs on a pipeline thread, returns the archive entries
    /// extracted (for directory backups).
    pub(crate) fn write(&mut self, input: &mut dyn Read) -> Result<Option<u64>> {
        match self {
            Plan::Extract { dir, staging } => {
                let into = staging.as_deref().unwrap_or(dir);
                extract(input, into, false).map(Some)
            }
            Plan::File { file, temp } => {
                let mut out = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&*temp)
                    .map_err(|e| write_err(file, e))?;
                copy(input, &mut out, file)?;
                out.sync_all().map_err(|e| write_err(file, e))?;
                Ok(None)
            }
            Plan::Stream(w) => {
                copy(input, w, Path::new("-"))?;
                w.flush().map_err(|e| write_err(Path::new("-"), e))?;
                Ok(None)
            }
        }
    }

    /// Makes a successful restore visible.
    pub(crate) fn commit(self) -> Result<()> {
        match self {
            Plan::Extract {
                dir,
                staging: Some(staging),
            } => fs::rename(&staging, &dir).map_err(|e| write_err(&dir, e)),
            Plan::File { file, temp } => fs::rename(&temp, &file).map_err(|e| write_err(&file, e)),
            Plan::Extract { staging: None, .. } | Plan::Stream(_) => Ok(()),
        }
    }

    /// Removes what a failed restore left behind, where that is ours to
    /// remove. Returns a note for the error message when something remains.
    pub(crate) fn abandon(self) -> Option<String> {
        match self {
            Plan::Extract {
                staging: Some(staging),
                ..
            } => {
                let _ = fs::remove_dir_all(staging);
                None
            }
            Plan::File { temp, .. } => {
                let _ = fs::remove_file(temp);
                None
            }
            Plan::Extract { dir, staging: None } => {
                Some(format!("{} may now hold a partial restore", dir.display()))
            }
            Plan::Stream(_) => Some("the output stream received a partial restore".into()),
        }
    }
}

/// A hidden name next to `path` for staging, e.g. `.name.restore-1a2b3c4d`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "restore".into());
    path.with_file_name(format!(".{name}.{what}-{:08x}", rand::random::<u32>()))
}

/// The file name a raw backup restores to inside a directory.
fn file_name(m: &Manifest) -> String {
    let from_path = match &m.source {
        SourceInfo::File { path } => Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        SourceInfo::Postgres(pg) => Some(match pg.dump {
            crate::manifest::PgDump::Database => format!("{}.dump", m.name.replace('/', "_")),
            crate::manifest::PgDump::Globals => format!("{}.sql", m.name.replace('/', "_")),
        }),
        _ => None,
    };
    from_path
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| m.name.replace('/', "_"))
}

fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// Copies with large writes; read errors come from the pipeline.
fn copy(input: &mut dyn Read, out: &mut dyn Write, path: &Path) -> Result<()> {
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = crate::pipeline::read_full(input, &mut buf).map_err(unwrap_io)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(|e| write_err(path, e))?;
    }
}

/// Extracts a tar stream into `dir` like `tar -x`: permissions and mtimes
/// restored, owners too when running as root, entries with `..` skipped and
/// paths that would lead outside `dir` through a symbolic link refused.
/// Directories are finished last, deepest first, so read-only directories
/// and directory mtimes come out right.
/// Extracts a tar stream into `dir`. For an incremental `layer`, its
/// deletion list (the first member) is applied instead of written.
pub(crate) fn extract(input: &mut dyn Read, dir: &Path, layer: bool) -> Result<u64> {
    let mut archive = tar::Archive::new(input);
    let root_user = is_root();
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_preserve_ownerships(root_user);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    let fail = |e: io::Error| match crate::pipeline::recover(e) {
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
            let n = crate::pipeline::read_full(entry, &mut self.buf)?;
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
        crate::pipeline::recover(e).unwrap_or_else(|e| Error::Interrupted(format!("tar: {e}")))
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
