//! Paths beneath a restore target, resolved without following symbolic
//! links.
//!
//! Every create, write, link and delete of a restore goes through a
//! [`Beneath`]: each directory of a path is opened relative to the one
//! above it with `O_NOFOLLOW`, starting at the target, and the last name is
//! acted on with the `*at` system calls relative to its directory. A
//! symbolic link anywhere on the way stops the operation, whoever made it
//! (an earlier entry, an earlier layer, or something already in the
//! target), so nothing can be written or removed outside the target. (The
//! kernel's `openat2(RESOLVE_NO_SYMLINKS)` does the same in one call; the
//! walk works on every kernel and under every seccomp profile, and keeps
//! the directories of the last path open, so a tar stream, which visits a
//! directory's entries together, costs one `openat` per directory.)

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, wrap};

/// Directories of the current path held open at most; deeper ones are
/// opened again for each use.
const HELD: usize = 64;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Where an archive entry goes beneath the target, as a relative path
/// (empty for the target itself): leading `/` and `.` parts dropped, as
/// `tar -x` does, and a `..` part refused.
///
/// # Errors
///
/// [`Error::OutsideTarget`] for a name with `..`.
pub(crate) fn relative(name: &[u8]) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for part in Path::new(OsStr::from_bytes(name)).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                return Err(Error::OutsideTarget {
                    entry: String::from_utf8_lossy(name).into_owned(),
                    reason: "it names a parent directory (`..`)",
                });
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

fn through_link(rel: &Path) -> io::Error {
    wrap(Error::OutsideTarget {
        entry: rel.display().to_string(),
        reason: "it leads through a symbolic link",
    })
}

/// A restore target, open.
pub(crate) struct Beneath {
    root: OwnedFd,
    /// The directories of the last path used, from the top down.
    open: Vec<(OsString, OwnedFd)>,
    /// The directory of the last path used, when deeper than [`HELD`].
    deep: Option<OwnedFd>,
}

impl Beneath {
    /// Opens the target directory (which must exist).
    pub(crate) fn new(root: &Path) -> io::Result<Beneath> {
        let root = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath {
            root,
            open: Vec::new(),
            deep: None,
        })
    }

    /// Forgets the open directories: call after anything that can change
    /// what a name resolves to (a removal, a directory replaced).
    pub(crate) fn forget(&mut self) {
        self.open.clear();
        self.deep = None;
    }

    /// The directory `parts` names beneath the target (made when missing,
    /// with `create`).
    fn dir(&mut self, rel: &Path, parts: &[&OsStr], create: bool) -> io::Result<BorrowedFd<'_>> {
        let same = self
            .open
            .iter()
            .zip(parts)
            .take_while(|((open, _), part)| open.as_os_str() == **part)
            .count();
        self.open.truncate(same);
        self.deep = None;
        let mut deep: Option<OwnedFd> = None;
        for part in &parts[same..] {
            let next = {
                let parent = match &deep {
                    Some(d) => d.as_fd(),
                    None => self
                        .open
                        .last()
                        .map_or(self.root.as_fd(), |(_, f)| f.as_fd()),
                };
                step(parent, part, create).map_err(|e| match e {
                    Step::Link => through_link(rel),
                    Step::Io(e) => e,
                })?
            };
            if deep.is_none() && self.open.len() < HELD {
                self.open.push((part.to_os_string(), next));
            } else {
                deep = Some(next);
            }
        }
        self.deep = deep;
        Ok(match &self.deep {
            Some(d) => d.as_fd(),
            None => self
                .open
                .last()
                .map_or(self.root.as_fd(), |(_, f)| f.as_fd()),
        })
    }

    /// The directory holding `rel` and `rel`'s last name; `None` for the
    /// target itself.
    fn parent<'a>(
        &mut self,
        rel: &'a Path,
        create: bool,
    ) -> io::Result<Option<(BorrowedFd<'_>, &'a OsStr)>> {
        let parts: Vec<&OsStr> = rel.iter().collect();
        let Some((name, above)) = parts.split_last() else {
            return Ok(None);
        };
        let name: &'a OsStr = name;
        let dir = self.dir(rel, above, create)?;
        Ok(Some((dir, name)))
    }

    /// Creates the regular file `rel` (replacing a non-directory there,
    /// never writing through it), with its directories.
    pub(crate) fn create_file(&mut self, rel: &Path) -> io::Result<Option<File>> {
        let Some((dir, name)) = self.parent(rel, true)? else {
            return Ok(None);
        };
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match rustix::fs::openat(dir, name, flags, mode) {
            Err(Errno::EXIST) => {
                clear(dir, name, rel)?;
                rustix::fs::openat(dir, name, flags, mode)?
            }
            other => other?,
        };
        Ok(Some(File::from(fd)))
    }

    /// Makes the directory `rel` (and those above it); a non-directory
    /// there is replaced.
    pub(crate) fn mkdir(&mut self, rel: &Path) -> io::Result<()> {
        let Some((dir, name)) = self.parent(rel, true)? else {
            return Ok(());
        };
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if is_dir(dir, name) => Ok(()),
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
                self.forget();
                let Some((dir, name)) = self.parent(rel, true)? else {
                    return Ok(());
                };
                Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `make` on the directory and name of `rel` once a
    /// non-directory there is removed: for symbolic links, device nodes
    /// and FIFOs. Forgets the open directories afterwards.
    pub(crate) fn replace(
        &mut self,
        rel: &Path,
        make: impl FnOnce(BorrowedFd<'_>, &OsStr) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some((dir, name)) = self.parent(rel, true)? else {
            return Ok(());
        };
        if rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            clear(dir, name, rel)?;
        }
        let made = make(dir, name);
        self.forget();
        made
    }

    /// Hard-links `rel` to the existing `target` (both beneath the root).
    pub(crate) fn link(&mut self, target: &Path, rel: &Path) -> io::Result<()> {
        let parts: Vec<&OsStr> = target.iter().collect();
        let Some((source_name, above)) = parts.split_last() else {
            return Err(io::Error::other(
                "a hard link to the target directory itself",
            ));
        };
        let source = walk(self.root.as_fd(), above).map_err(|e| match e {
            Step::Link => through_link(target),
            Step::Io(e) => e,
        })?;
        let source = match source {
            Some(dir) => dir,
            None => self.root.try_clone()?,
        };
        self.replace(rel, |dir, name| {
            Ok(rustix::fs::linkat(
                &source,
                *source_name,
                dir,
                name,
                AtFlags::empty(),
            )?)
        })
    }

    /// Opens the directory `rel` to stamp its metadata; `None` when it is
    /// no longer a directory (a later entry replaced it).
    pub(crate) fn open_dir(&mut self, rel: &Path) -> io::Result<Option<File>> {
        let Some((dir, name)) = self.parent(rel, false)? else {
            return Ok(Some(File::from(self.root.try_clone()?)));
        };
        match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `rel` and, for a directory, everything in it; nothing when
    /// it is not there. Never follows a symbolic link: one on the way is
    /// an error, one at `rel` is removed itself.
    pub(crate) fn remove(&mut self, rel: &Path) -> io::Result<()> {
        self.forget();
        let found = match self.parent(rel, false) {
            Ok(found) => found,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some((dir, name)) = found else {
            return Err(io::Error::other(
                "an incremental layer may not delete the target itself",
            ));
        };
        let removed = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                remove_tree(dir, name)
            }
            Ok(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
        };
        self.forget();
        removed
    }
}

/// Why a step of a walk failed.
enum Step {
    /// The name is a symbolic link.
    Link,
    Io(io::Error),
}

/// Opens (with `create`, makes) directory `name` in `parent`.
fn step(parent: BorrowedFd<'_>, name: &OsStr, create: bool) -> Result<OwnedFd, Step> {
    let open = || rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty());
    let failed = |e: Errno| {
        let link = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
        if link { Step::Link } else { Step::Io(e.into()) }
    };
    match open() {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if create => {
            match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Step::Io(e.into())),
            }
            open().map_err(failed)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Opens the directories `parts` beneath `root` without making any; `None`
/// for the root itself.
fn walk(root: BorrowedFd<'_>, parts: &[&OsStr]) -> Result<Option<OwnedFd>, Step> {
    let mut at: Option<OwnedFd> = None;
    for part in parts {
        let next = step(at.as_ref().map_or(root, |f| f.as_fd()), part, false)?;
        at = Some(next);
    }
    Ok(at)
}

fn is_dir(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Removes the non-directory `name` so something else can take its place
/// (as `tar -x` replaces files); a directory there is an error.
fn clear(dir: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> io::Result<()> {
    if is_dir(dir, name) {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("{} is a directory in the target", rel.display()),
        ));
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes directory `name` in `parent` and everything in it, without
/// following symbolic links.
fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let fd = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?;
    loop {
        // Names are collected a batch at a time, then removed: a directory
        // is not changed while it is read.
        let mut batch: Vec<(std::ffi::CString, bool)> = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let file = entry.file_name();
            if file == c"." || file == c".." {
                continue;
            }
            let is_dir = match entry.file_type() {
                FileType::Directory => true,
                FileType::Unknown => is_dir(fd.as_fd(), OsStr::from_bytes(file.to_bytes())),
                _ => false,
            };
            batch.push((file.to_owned(), is_dir));
            if batch.len() >= 1024 {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        for (file, is_dir) in batch {
            let file = OsStr::from_bytes(file.to_bytes());
            if is_dir {
                remove_tree(fd.as_fd(), file)?;
            } else {
                rustix::fs::unlinkat(&fd, file, AtFlags::empty())?;
            }
        }
    }
    Ok(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_parent_parts_are_refused_and_roots_dropped() {
        assert_eq!(relative(b"./a/b").expect("plain"), Path::new("a/b"));
        assert_eq!(
            relative(b"/etc/passwd").expect("absolute"),
            Path::new("etc/passwd")
        );
        assert_eq!(relative(b"./").expect("root"), Path::new(""));
        for bad in [&b"../x"[..], b"a/../../x", b"./a/.."] {
            let err = relative(bad).expect_err("refused");
            assert!(matches!(err, Error::OutsideTarget { .. }), "{err}");
        }
    }

    #[test]
    fn nothing_is_written_or_removed_through_a_symbolic_link() {
        let target = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("keep"), "precious").expect("write");
        std::os::unix::fs::symlink(outside.path(), target.path().join("s")).expect("symlink");
        let mut b = Beneath::new(target.path()).expect("open");
        for result in [
            b.create_file(Path::new("s/new")).map(|_| ()),
            b.remove(Path::new("s/keep")),
            b.mkdir(Path::new("s/d")),
            b.link(Path::new("s/keep"), Path::new("l")),
        ] {
            let err = result.expect_err("refused");
            let err = crate::error::recover(err).expect("our error");
            assert!(matches!(err, Error::OutsideTarget { .. }), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(outside.path().join("keep")).expect("read"),
            "precious"
        );
        assert_eq!(std::fs::read_dir(outside.path()).expect("list").count(), 1);
        // The link itself can be removed, and replaced by a directory.
        b.remove(Path::new("s")).expect("remove the link");
        assert!(outside.path().join("keep").exists());
        b.mkdir(Path::new("s/d")).expect("now a directory");
        b.create_file(Path::new("s/d/f"))
            .expect("create")
            .expect("a file");
        b.remove(Path::new("s")).expect("remove the tree");
        assert!(!target.path().join("s").exists());
    }
}
