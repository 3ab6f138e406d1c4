//! What to back up: a file, a directory (streamed as tar), standard input,
//! a command's standard output, a PostgreSQL database or a Docker volume —
//! as a user names it ([`SourceSpec`]) and as the pipeline reads it
//! ([`Source`]).
//!
//! A source is read on a pipeline thread straight into the compressor;
//! nothing is staged on disk.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Result, source_err};
use crate::manifest::{Payload, SourceInfo};
use crate::sink::{Sink, command, copy};

mod exclude;
mod spec;
pub(crate) mod tree;

pub use exclude::Excludes;
pub(crate) use exclude::{Filter, Walk};
pub use spec::{DOCKER_VOLUME_PREFIX, PostgresSpec, SourceSpec, VolumeSpec};

/// What to back up.
#[non_exhaustive]
pub enum Source {
    /// A regular file (stored raw) or a directory (stored as a tar archive);
    /// which one is decided when the backup starts. Symbolic links given as
    /// the path itself are followed; links inside a directory are stored as
    /// links.
    Path(PathBuf),
    /// Several files and directories in one tar archive, named relative to
    /// their deepest common directory (links in the paths themselves
    /// resolved).
    Paths(Vec<PathBuf>),
    /// The process's standard input, stored raw.
    Stdin,
    /// A command's standard output, stored raw. The backup fails, and no
    /// manifest is written, when the command exits unsuccessfully.
    Command {
        /// The program to run (looked up in `PATH`).
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
    },
    /// Any byte stream, stored raw: lets a service back up data it produces
    /// itself without a temporary file.
    Reader {
        /// What the stream is, for the manifest and messages.
        description: String,
        /// The stream.
        reader: Box<dyn Read + Send>,
    },
    /// A PostgreSQL database or the cluster's roles and tablespaces,
    /// dumped with exact row counts; see [`crate::postgres`].
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::postgres::PgSource>),
    /// A Docker volume, read through the Engine API and stored as the
    /// engine's tar archive; see [`crate::docker`].
    #[cfg(feature = "docker")]
    DockerVolume(VolumeSpec),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Source::Paths(p) => f.debug_tuple("Paths").field(p).finish(),
            Source::Stdin => f.write_str("Stdin"),
            Source::Command { program, args } => f
                .debug_struct("Command")
                .field("program", program)
                .field("args", &args.len())
                .finish(),
            Source::Reader { description, .. } => f
                .debug_struct("Reader")
                .field("description", description)
                .finish_non_exhaustive(),
            #[cfg(feature = "postgres")]
            Source::Postgres(pg) => f.debug_tuple("Postgres").field(pg).finish(),
            #[cfg(feature = "docker")]
            Source::DockerVolume(v) => f.debug_tuple("DockerVolume").field(v).finish(),
        }
    }
}

impl Source {
    /// A file or directory.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Source::Path(path.into())
    }

    /// Any byte stream, described by `description` (e.g. "orders export").
    pub fn reader(description: impl Into<String>, reader: impl Read + Send + 'static) -> Self {
        Source::Reader {
            description: description.into(),
            reader: Box::new(reader),
        }
    }

    /// A command's standard output.
    pub fn command<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Source::Command {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// A name for backups of this source when none is given: the file or
    /// directory name, `stdin`, or the program's name.
    pub fn default_name(&self) -> String {
        let name = match self {
            Source::Path(p) => fs::canonicalize(p)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
            Source::Paths(paths) => Some(
                paths
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
            Source::Stdin => Some("stdin".to_owned()),
            Source::Command { program, .. } => Path::new(program)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            Source::Reader { description, .. } => Some(description.clone()),
            #[cfg(feature = "postgres")]
            Source::Postgres(pg) => Some(pg.default_name()),
            #[cfg(feature = "docker")]
            Source::DockerVolume(v) => Some(v.volume.clone()),
        };
        name.filter(|n| !n.is_empty())
            .unwrap_or_else(|| "backup".to_owned())
    }

    /// The number of bytes the source will produce, when it can be known
    /// cheaply: a file's size, or the sum of a directory's file sizes (one
    /// `stat` per entry). Meant for progress bars; the real count can differ
    /// (tar headers, files changing).
    pub fn estimate_size(&self) -> Option<u64> {
        match self {
            Source::Path(p) => {
                let md = fs::metadata(p).ok()?;
                if md.is_dir() {
                    Some(tree::estimate(p))
                } else {
                    Some(md.len())
                }
            }
            Source::Paths(paths) => Some(
                paths
                    .iter()
                    .filter_map(|p| Source::Path(p.clone()).estimate_size())
                    .sum(),
            ),
            _ => None,
        }
    }

    /// What a directory backup of this source walks, for its filter and
    /// file index; None for other sources.
    pub(crate) fn selection(&self) -> Result<Option<tree::Selection>> {
        Ok(match self {
            Source::Path(p) if p.is_dir() => Some(tree::Selection::directory(p)),
            Source::Paths(paths) => Some(tree::Selection::of(paths)?),
            _ => None,
        })
    }

    /// How this source's plaintext will be laid out.
    pub(crate) fn payload(&self) -> Result<Payload> {
        match self {
            Source::Path(p) => {
                let md = fs::metadata(p).map_err(|e| source_err(p, e))?;
                if md.is_dir() {
                    Ok(Payload::Tar)
                } else {
                    Ok(Payload::Raw)
                }
            }
            Source::Paths(_) => Ok(Payload::Tar),
            #[cfg(feature = "postgres")]
            Source::Postgres(pg) if pg.is_physical() => Ok(Payload::Tar),
            #[cfg(feature = "docker")]
            Source::DockerVolume(_) => Ok(Payload::Tar),
            _ => Ok(Payload::Raw),
        }
    }

    /// Reads the whole source into `out`. Runs on a pipeline thread.
    pub(crate) fn produce(self, out: &mut dyn Sink, opts: &ReadOptions<'_>) -> Result<SourceInfo> {
        match self {
            Source::Path(p) => {
                let md = fs::metadata(&p).map_err(|e| source_err(&p, e))?;
                let path = p.to_string_lossy().into_owned();
                if md.is_dir() {
                    let entries = tree::write_tar(&p, out, opts)?;
                    Ok(SourceInfo::Directory {
                        path,
                        entries,
                        paths: Vec::new(),
                    })
                } else {
                    let file = File::open(&p).map_err(|e| source_err(&p, e))?;
                    copy(file, out).map_err(|e| e.into_error(&p.display().to_string()))?;
                    Ok(SourceInfo::File { path })
                }
            }
            Source::Paths(paths) => {
                let chosen = tree::Selection::of(&paths)?;
                let entries = tree::write_tar(&chosen.root, out, opts)?;
                Ok(SourceInfo::Directory {
                    path: chosen.root.to_string_lossy().into_owned(),
                    entries,
                    paths: chosen.relative(),
                })
            }
            Source::Stdin => {
                copy(io::stdin().lock(), out).map_err(|e| e.into_error("standard input"))?;
                Ok(SourceInfo::Stdin)
            }
            Source::Command { program, args } => {
                let name = Path::new(&program).display().to_string();
                let mut cmd = std::process::Command::new(&program);
                cmd.args(&args);
                command::run(cmd, name, out)
            }
            Source::Reader {
                description,
                reader,
            } => {
                copy(reader, out).map_err(|e| e.into_error(&description))?;
                Ok(SourceInfo::Stream { description })
            }
            #[cfg(feature = "postgres")]
            Source::Postgres(pg) => pg.produce(out),
            #[cfg(feature = "docker")]
            Source::DockerVolume(v) => crate::docker::read(
                &v.volume,
                v.stop_label.as_deref(),
                v.helper_image.as_deref(),
                out,
            ),
        }
    }
}

/// Options that affect how sources are read.
pub(crate) struct ReadOptions<'a> {
    /// Skip unreadable files and directories with a warning instead of failing.
    pub skip_unreadable: bool,
    /// Where warnings go.
    pub warn: &'a (dyn Fn(String) + Sync),
    /// For directory trees: records the file index and, for an incremental,
    /// leaves unchanged files out.
    pub tracker: Option<&'a crate::incremental::Tracker>,
    /// For directory trees: what is left out.
    pub filter: &'a Filter,
    /// For directory trees: the index of entries being written.
    pub index: Option<&'a crate::index::IndexWriter>,
}
