//! What a directory backup leaves out: gitignore-style patterns (through
//! the `ignore` crate, ripgrep's matcher), cache directories marked with a
//! `CACHEDIR.TAG`, directories holding a marker file, other file systems,
//! and the repository and index directories themselves.
//!
//! The one walk of a tree ([`Walk`]) applies them, so the archive, the
//! size estimate and an incremental's deletion list all see the same
//! entries: a path excluded since the parent backup is a deletion in the
//! next layer.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name and first bytes of a cache directory's tag, from the Cache
/// Directory Tagging Specification (<https://bford.info/cachedir/>).
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What to leave out of a directory backup, as a user names it: the
/// command line's `--exclude`, `--exclude-file`, `--exclude-caches`,
/// `--exclude-if-present` and `--one-file-system`, a job's keys of the
/// same names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excludes {
    /// Patterns in gitignore syntax, matched against paths relative to the
    /// backed-up directory: `node_modules/` (a directory anywhere),
    /// `/build` (anchored at the top), `**/*.log`, `!keep.log` (a negation
    /// re-includes what an earlier pattern left out, unless a parent
    /// directory is left out).
    #[serde(default, rename = "exclude", skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// Files of such patterns, one per line, `#` comments (a `.gitignore`).
    #[serde(
        default,
        rename = "exclude_file",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub files: Vec<PathBuf>,
    /// Leave out the contents of directories holding a valid
    /// `CACHEDIR.TAG` (the directory and its tag are kept, as GNU tar's
    /// `--exclude-caches` does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude_caches: bool,
    /// Leave out, whole, every directory holding a file of one of these
    /// names (e.g. `.nobackup`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_if_present: Vec<String>,
    /// Stay on the file system of the backed-up directory: mount points
    /// below it are kept as empty directories.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_file_system: bool,
}

impl Excludes {
    /// The names of its fields in a config file or a JSON options object.
    pub const FIELDS: [&'static str; 5] = [
        "exclude",
        "exclude_file",
        "exclude_caches",
        "exclude_if_present",
        "one_file_system",
    ];

    /// True when nothing is left out.
    pub fn is_empty(&self) -> bool {
        *self == Excludes::default()
    }
}

/// [`Excludes`] made ready for one tree: the patterns compiled against its
/// root, and the directories that are never backed up (the repository's
/// and the index's, when they are inside it) by device and inode.
pub(crate) struct Filter {
    patterns: Option<Gitignore>,
    caches: bool,
    markers: Vec<OsString>,
    one_file_system: bool,
    never: Vec<(u64, u64)>,
    /// What is backed up below the walk's root, each with the device it is
    /// on (for `one_file_system`): the root itself, or the paths of a
    /// backup of several. Empty: everything.
    tops: Vec<(PathBuf, u64)>,
}

/// Where an entry stands against the backed-up paths.
enum Place {
    /// Inside one of them, on this device.
    Inside(Option<u64>),
    /// A directory on the way down to one of them.
    Above,
    /// Beside them all.
    Outside,
}

impl Filter {
    /// Compiles `ex` for the tree at `root`; `never` are directories left
    /// out wherever they are (those that do not exist are ignored).
    pub(crate) fn new(root: &Path, ex: &Excludes, never: &[PathBuf]) -> Result<Filter> {
        let patterns = if ex.patterns.is_empty() && ex.files.is_empty() {
            None
        } else {
            let mut b = GitignoreBuilder::new(root);
            for file in &ex.files {
                read_pattern_file(file)?;
                if let Some(e) = b.add(file) {
                    return Err(Error::Exclude {
                        pattern: file.display().to_string(),
                        problem: e.to_string(),
                    });
                }
            }
            for p in &ex.patterns {
                b.add_line(None, p).map_err(|e| Error::Exclude {
                    pattern: p.clone(),
                    problem: e.to_string(),
                })?;
            }
            Some(b.build().map_err(|e| Error::Exclude {
                pattern: ex.patterns.join(" "),
                problem: e.to_string(),
            })?)
        };
        for m in &ex.exclude_if_present {
            let mut parts = Path::new(m).components();
            let one_name = matches!(
                (parts.next(), parts.next()),
                (Some(std::path::Component::Normal(_)), None)
            );
            if !one_name {
                return Err(Error::Exclude {
                    pattern: m.clone(),
                    problem: "a marker is a file name, without `/` (e.g. .nobackup)".into(),
                });
            }
        }
        Ok(Filter {
            patterns,
            caches: ex.exclude_caches,
            markers: ex.exclude_if_present.iter().map(OsString::from).collect(),
            one_file_system: ex.one_file_system,
            never: never
                .iter()
                .filter_map(|p| fs::metadata(p).ok())
                .map(|md| (md.dev(), md.ino()))
                .collect(),
            tops: Vec::new(),
        }
        .select(&[root.to_path_buf()]))
    }

    /// Backs up only `paths` (below the root, as the walk names them) and
    /// the directories on the way down to them.
    pub(crate) fn select(mut self, paths: &[PathBuf]) -> Filter {
        self.tops = paths
            .iter()
            .map(|p| (p.clone(), fs::metadata(p).map_or(0, |md| md.dev())))
            .collect();
        self
    }

    fn place(&self, path: &Path) -> Place {
        if self.tops.is_empty() {
            return Place::Inside(None);
        }
        if let Some((_, dev)) = self.tops.iter().find(|(top, _)| path.starts_with(top)) {
            return Place::Inside(Some(*dev));
        }
        if self.tops.iter().any(|(top, _)| top.starts_with(path)) {
            Place::Above
        } else {
            Place::Outside
        }
    }

    /// A filter that keeps everything.
    pub(crate) fn none() -> Filter {
        Filter {
            patterns: None,
            caches: false,
            markers: Vec::new(),
            one_file_system: false,
            never: Vec::new(),
            tops: Vec::new(),
        }
    }

    /// Whether the entry at `path` is left out, whole (for a directory:
    /// with everything below it).
    fn excluded(&self, path: &Path, md: &Metadata) -> bool {
        let dir = md.is_dir();
        if dir && self.never.contains(&(md.dev(), md.ino())) {
            return true;
        }
        if let Some(gi) = &self.patterns {
            if gi.matched(path, dir).is_ignore() {
                return true;
            }
        }
        dir && self
            .markers
            .iter()
            .any(|m| path.join(m).symlink_metadata().is_ok())
    }

    /// Whether the directory at `path` keeps only itself and its tag.
    fn is_cache(&self, path: &Path) -> bool {
        if !self.caches {
            return false;
        }
        let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
        fs::File::open(path.join(CACHEDIR_TAG))
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|()| head == CACHEDIR_SIGNATURE)
    }
}

/// Checks that a pattern file can be read, for an error that names it.
fn read_pattern_file(path: &Path) -> Result<()> {
    fs::metadata(path)
        .and_then(|md| {
            if md.is_file() {
                Ok(())
            } else {
                Err(io::Error::other("not a regular file"))
            }
        })
        .map_err(|e| Error::Exclude {
            pattern: path.display().to_string(),
            problem: format!("cannot read the exclude file: {e}"),
        })
}

/// One entry of a filtered walk: its path, and its metadata (not
/// following symbolic links) or why there is none.
pub(crate) struct Found {
    pub path: PathBuf,
    pub md: io::Result<Metadata>,
}

/// A sorted, depth-first walk of a tree (symbolic links not followed, the
/// root followed) that leaves out what a [`Filter`] says.
pub(crate) struct Walk<'f> {
    inner: walkdir::IntoIter,
    filter: &'f Filter,
    /// A cache directory's tag, due right after the directory.
    tag: Option<PathBuf>,
}

impl<'f> Walk<'f> {
    pub(crate) fn new(root: &Path, filter: &'f Filter) -> Walk<'f> {
        Walk {
            inner: walkdir::WalkDir::new(root)
                .follow_links(false)
                .follow_root_links(true)
                .sort_by_file_name()
                .into_iter(),
            filter,
            tag: None,
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        if let Some(path) = self.tag.take() {
            let md = fs::symlink_metadata(&path);
            return Some(Found { path, md });
        }
        loop {
            let entry = match self.inner.next()? {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().map(Path::to_owned).unwrap_or_default();
                    let err = e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("filesystem loop"));
                    return Some(Found { path, md: Err(err) });
                }
            };
            let md = entry.metadata().map_err(|e| {
                e.into_io_error()
                    .unwrap_or_else(|| io::Error::other("no metadata"))
            });
            let path = entry.path();
            let is_dir = md.as_ref().is_ok_and(Metadata::is_dir);
            let dev = match self.filter.place(path) {
                Place::Inside(dev) => dev,
                Place::Above => {
                    return Some(Found {
                        path: path.to_owned(),
                        md,
                    });
                }
                Place::Outside => {
                    if is_dir {
                        self.inner.skip_current_dir();
                    }
                    continue;
                }
            };
            // The root itself is never left out.
            if entry.depth() > 0 {
                if let Ok(md) = &md {
                    if self.filter.excluded(path, md) {
                        if is_dir {
                            self.inner.skip_current_dir();
                        }
                        continue;
                    }
                }
            }
            let mount_point = self.filter.one_file_system
                && is_dir
                && matches!((&md, dev), (Ok(md), Some(dev)) if md.dev() != dev);
            if mount_point {
                // It stays, as an empty directory.
                self.inner.skip_current_dir();
            } else if is_dir && self.filter.is_cache(path) {
                self.inner.skip_current_dir();
                self.tag = Some(path.join(CACHEDIR_TAG));
            }
            return Some(Found {
                path: path.to_owned(),
                md,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path, ex: &Excludes, never: &[PathBuf]) -> Vec<String> {
        let filter = Filter::new(root, ex, never).expect("filter");
        Walk::new(root, &filter)
            .skip(1)
            .map(|f| {
                f.path
                    .strip_prefix(root)
                    .expect("inside")
                    .display()
                    .to_string()
            })
            .collect()
    }

    use test_support::tree::write_files as tree;

    #[test]
    fn caches_keep_the_directory_and_its_tag() {
        let dir = tempfile::tempdir().expect("tmp");
        tree(dir.path(), &["a/x", "cache/y", "fake/z"]);
        let mut tag = CACHEDIR_SIGNATURE.to_vec();
        tag.extend_from_slice(b"\n# made by a test\n");
        fs::write(dir.path().join("cache/CACHEDIR.TAG"), &tag).expect("tag");
        fs::write(dir.path().join("fake/CACHEDIR.TAG"), b"not the signature").expect("tag");
        let ex = Excludes {
            exclude_caches: true,
            ..Excludes::default()
        };
        assert_eq!(
            names(dir.path(), &ex, &[]),
            [
                "a",
                "a/x",
                "cache",
                "cache/CACHEDIR.TAG",
                "fake",
                "fake/CACHEDIR.TAG",
                "fake/z"
            ]
        );
    }

    #[test]
    fn markers_and_never_leave_directories_out_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        tree(
            dir.path(),
            &["a/x", "b/.nobackup", "b/y", "repo/data/z", "c"],
        );
        let ex = Excludes {
            exclude_if_present: vec![".nobackup".into()],
            ..Excludes::default()
        };
        assert_eq!(
            names(
                dir.path(),
                &ex,
                &[dir.path().join("repo"), dir.path().join("gone")]
            ),
            ["a", "a/x", "c"]
        );
    }

    #[test]
    fn fields_are_the_serialized_names() {
        let all = Excludes {
            patterns: vec!["a".into()],
            files: vec!["f".into()],
            exclude_caches: true,
            exclude_if_present: vec![".n".into()],
            one_file_system: true,
        };
        let v = serde_json::to_value(&all).expect("json");
        let mut names: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        let mut fields = Excludes::FIELDS;
        fields.sort_unstable();
        assert_eq!(names, fields);
    }

    #[test]
    fn a_bad_pattern_or_file_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let ex = Excludes {
            files: vec![dir.path().join("missing.txt")],
            ..Excludes::default()
        };
        let e = Filter::new(dir.path(), &ex, &[]).err().expect("refused");
        assert!(e.to_string().contains("missing.txt"), "{e}");
        let ex = Excludes {
            patterns: vec!["[z-a]".into()],
            ..Excludes::default()
        };
        let e = Filter::new(dir.path(), &ex, &[]).err().expect("refused");
        assert!(e.to_string().contains("[z-a]"), "{e}");
        for marker in ["", "/etc/passwd", "a/b", ".."] {
            let ex = Excludes {
                exclude_if_present: vec![marker.into()],
                ..Excludes::default()
            };
            let e = Filter::new(dir.path(), &ex, &[]).err().expect("refused");
            assert!(e.to_string().contains("file name"), "{marker}: {e}");
        }
    }
}

/// Exclude patterns against git's own reading of them: over random trees
/// and random pattern lists (anchored and unanchored, `**`, negations,
/// directory-only), the files a walk keeps are exactly the files
/// `git ls-files --others --exclude-from` lists.
#[cfg(test)]
mod against_git {
    use std::collections::BTreeSet;
    use std::process::Command;

    use proptest::prelude::*;

    use super::*;

    const DIRS: [&str; 5] = ["a", "b", "build", "node_modules", "c d"];
    const FILES: [&str; 5] = ["x.log", "keep.log", "y.txt", "z", "build"];
    const PATTERNS: [&str; 22] = [
        "*.log",
        "!keep.log",
        "build/",
        "/build",
        "build",
        "a/**/z",
        "**/b",
        "**/b/",
        "node_modules/",
        "b/*.txt",
        "/a/b",
        "x.*",
        "!b/",
        "!/a",
        "a/",
        "**/y.txt",
        "a/**",
        "c d/",
        "*",
        "!*.txt",
        "[xy].*",
        "?",
    ];

    fn git_keeps(root: &Path, patterns: &Path, home: &Path) -> BTreeSet<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "--others", "-z", "--exclude-from"])
            .arg(patterns)
            .env("HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git ls-files");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn a_walk_keeps_what_git_keeps(
            files in prop::collection::vec(
                (prop::collection::vec(0..DIRS.len(), 0..4), 0..FILES.len()),
                1..14,
            ),
            patterns in prop::collection::vec(0..PATTERNS.len(), 1..6),
        ) {
            if Command::new("git").arg("--version").output().is_err() {
                // scripts/install-deps.sh installs git; without it there is
                // no reference to compare with.
                assert!(std::env::var_os("CI").is_none(), "git is missing: run scripts/install-deps.sh");
                return Ok(());
            }
            let tmp = tempfile::tempdir().expect("tmp");
            let root = tmp.path().join("root");
            fs::create_dir(&root).expect("root");
            for (dirs, file) in &files {
                let mut p = root.clone();
                for d in dirs {
                    p.push(DIRS[*d]);
                }
                // A file where a directory is wanted (or the reverse): skip it.
                if fs::create_dir_all(&p).is_err() || p.join(FILES[*file]).is_dir() {
                    continue;
                }
                let _ = fs::write(p.join(FILES[*file]), b"x");
            }
            let lines: Vec<String> = patterns.iter().map(|&i| PATTERNS[i].to_owned()).collect();
            let list = tmp.path().join("patterns");
            fs::write(&list, lines.join("\n") + "\n").expect("patterns");
            let init = Command::new("git").arg("init").arg("-q").arg(&root)
                .env("HOME", tmp.path()).env("GIT_CONFIG_NOSYSTEM", "1").status().expect("git init");
            prop_assert!(init.success());

            let ex = Excludes { patterns: lines.clone(), ..Excludes::default() };
            let filter = Filter::new(&root, &ex, &[root.join(".git")]).expect("filter");
            let ours: BTreeSet<String> = Walk::new(&root, &filter)
                .filter(|f| f.md.as_ref().is_ok_and(Metadata::is_file))
                .map(|f| f.path.strip_prefix(&root).expect("inside").to_string_lossy().into_owned())
                .collect();
            let git = git_keeps(&root, &list, tmp.path());
            prop_assert_eq!(ours, git, "patterns {:?}", lines);
        }
    }
}
