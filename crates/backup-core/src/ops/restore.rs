//! Restoring a backup: where its data goes (a path or a stream), written so
//! that nothing appears at a new target unless the whole restore checks out.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result, unwrap_io};
use crate::keys::Identities;
use crate::manifest::{Manifest, Payload, SourceInfo};
use crate::ops::list::chain;
use crate::pipeline::decode::decode;
use crate::pipeline::{BLOCK, read_full};
use crate::progress::{NoProgress, Progress};
use crate::store::Store;

mod beneath;
pub(crate) mod extract;
pub(crate) mod part;

use extract::extract;
pub use part::PartRead;

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
    /// For directory backups: restore only these paths (files or
    /// directories, as `ls` names them). Where the backup has an index and
    /// no parent, only the frames holding them are read.
    pub include: Vec<String>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            force: false,
            progress: Arc::new(NoProgress),
            include: Vec::new(),
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

    /// Restore only `paths` of a directory backup.
    pub fn with_include<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.include = paths.into_iter().map(Into::into).collect();
        self
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Where the data went (a path, or `-` for a stream).
    pub target: String,
    /// Plaintext bytes restored (for a partial restore: those of the
    /// entries picked).
    pub bytes: u64,
    /// Archive entries extracted, for directory backups restored to a path.
    pub entries: Option<u64>,
    /// For a partial restore read through the index: the bytes fetched.
    pub read: Option<PartRead>,
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
                    return Err(Error::TargetNotEmpty {
                        target: path.display().to_string(),
                        holds: "is a directory that is not empty".into(),
                    });
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
                        return Err(Error::TargetNotEmpty {
                            target: file.display().to_string(),
                            holds: "is a file that already exists".into(),
                        });
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
    pub(crate) fn write(
        &mut self,
        input: &mut dyn Read,
        include: &[String],
    ) -> Result<Option<u64>> {
        match self {
            Plan::Extract { dir, staging } => {
                let into = staging.as_deref().unwrap_or(dir);
                extract(input, into, false, include).map(Some)
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

    /// The directory a directory backup `m` is extracted into.
    pub(crate) fn directory(&self, m: &Manifest) -> Result<PathBuf> {
        match self {
            Plan::Extract { dir, staging } => Ok(staging.clone().unwrap_or_else(|| dir.clone())),
            _ => Err(Error::WrongKind {
                id: m.id.to_string(),
                problem: "is not a directory backup, so it restores whole".into(),
            }),
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

pub(crate) fn write_err(path: &Path, source: io::Error) -> Error {
    Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// Copies with large writes; read errors come from the pipeline.
fn copy(input: &mut dyn Read, out: &mut dyn Write, path: &Path) -> Result<()> {
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = read_full(input, &mut buf).map_err(unwrap_io)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(|e| write_err(path, e))?;
    }
}

/// Restores `manifest` to `target`; see
/// [`Repository::restore`](crate::Repository::restore).
pub(crate) async fn restore(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: RestoreTarget,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    if !opts.include.is_empty() {
        crate::ops::ls::directory_only(manifest)?;
        if matches!(target, RestoreTarget::Writer(_)) {
            return Err(Error::InvalidOption {
                option: "include",
                problem: "a part of a backup restores into a directory, not a stream".into(),
            });
        }
    }
    let normalized;
    let opts = if opts.include.is_empty() {
        opts
    } else {
        normalized = RestoreOptions {
            include: opts
                .include
                .iter()
                .map(|p| crate::index::normalize(p, crate::ops::ls::directory_path(manifest)))
                .collect(),
            ..opts.clone()
        };
        &normalized
    };
    if manifest.parent.is_some() {
        return restore_chain(store, manifest, identities, target, opts).await;
    }
    if manifest.index.is_some() && !opts.include.is_empty() {
        return restore_part(store, manifest, identities, target, opts).await;
    }
    let plan = Plan::new(manifest, target, opts.force)?;
    let described = plan.describe();
    let shared = Arc::new(Mutex::new(Some(plan)));
    let sink_plan = Arc::clone(&shared);
    let include = opts.include.clone();
    let result = decode(
        store,
        manifest,
        identities,
        Arc::clone(&opts.progress),
        move |input| {
            let mut guard = sink_plan.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(plan) => plan.write(input, &include),
                None => Err(Error::Interrupted("restore plan already used".into())),
            }
        },
    )
    .await;
    let plan = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(plan) = plan else {
        return Err(Error::Interrupted("restore plan lost".into()));
    };
    match result {
        Ok(entries) => {
            plan.commit()?;
            Ok(RestoreReport {
                target: described,
                // Checked against the manifest by the pipeline.
                bytes: manifest.sizes.raw,
                entries,
                read: None,
            })
        }
        Err(e) => {
            if let Some(note) = plan.abandon() {
                tracing::warn!("restore of {} failed: {note}", manifest.id);
                if let Error::Corrupt { id, problem } = e {
                    return Err(Error::Corrupt {
                        id,
                        problem: format!("{problem}; {note}"),
                    });
                }
            }
            Err(e)
        }
    }
}

/// Restores an incremental: the full backup, then each layer, removing
/// what each layer lists before extracting it, into a staging directory
/// renamed to the target once every link checked out.
async fn restore_chain(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: RestoreTarget,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let chain = chain(store, manifest).await?;
    if matches!(target, RestoreTarget::Writer(_)) {
        return Err(Error::Incremental {
            problem: format!(
                "backup {} restores to a directory (its chain of {} backups is applied \
                 there), not to a stream",
                manifest.id,
                chain.len()
            ),
        });
    }
    let plan = Plan::new(&chain[0], target, opts.force)?;
    let described = plan.describe();
    let into = plan.directory(&chain[0])?;
    let mut entries = 0;
    for (i, link) in chain.iter().enumerate() {
        let dir = into.clone();
        let include = opts.include.clone();
        let result = decode(
            store,
            link,
            identities,
            Arc::clone(&opts.progress),
            move |input| extract(input, &dir, i > 0, &include),
        )
        .await;
        match result {
            Ok(n) => entries += n,
            Err(e) => {
                if let Some(note) = plan.abandon() {
                    tracing::warn!("restore of {} failed: {note}", manifest.id);
                }
                return Err(e);
            }
        }
    }
    plan.commit()?;
    Ok(RestoreReport {
        target: described,
        bytes: chain.iter().map(|m| m.sizes.raw).sum(),
        entries: Some(entries),
        read: None,
    })
}

/// Restores the paths `opts.include` names of a full directory backup
/// with an index, reading only the frames that hold them.
async fn restore_part(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    target: RestoreTarget,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let plan = Plan::new(manifest, target, opts.force)?;
    let described = plan.describe();
    let into = plan.directory(manifest)?;
    match part::extract_part(store, manifest, identities, &opts.include, into).await {
        Ok((entries, plaintext, read)) => {
            plan.commit()?;
            Ok(RestoreReport {
                target: described,
                bytes: plaintext,
                entries: Some(entries),
                read: Some(read),
            })
        }
        Err(e) => {
            if let Some(note) = plan.abandon() {
                tracing::warn!("restore of {} failed: {note}", manifest.id);
            }
            Err(e)
        }
    }
}
