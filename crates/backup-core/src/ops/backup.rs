//! Making a backup: a source streamed through zstd and age into the store,
//! then its manifest.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::incremental::Tracker;
use crate::index::IndexWriter;
use crate::keys::Recipients;
use crate::lock::RepoLock;
use crate::manifest::{
    BackupId, Compression, DATA_PREFIX, Encryption, IndexObject, MANIFEST_FORMAT, Manifest,
    Payload, SourceInfo, Tool,
};
use crate::pipeline::PipelineOptions;
use crate::pipeline::encode::{Reading, encode};
use crate::pipeline::seal::Sealer;
use crate::progress::{NoProgress, Progress};
use crate::source::tree::Selection;
use crate::source::{Excludes, Filter, Source};
use crate::store::Store;

/// How to make a backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Who can decrypt it.
    pub recipients: Recipients,
    /// Its name; defaults to the source's name.
    pub name: Option<String>,
    /// Compression and pipeline tuning.
    pub pipeline: PipelineOptions,
    /// Skip unreadable files in a directory with a warning instead of
    /// failing the backup.
    pub skip_unreadable: bool,
    /// Receives progress.
    pub progress: Arc<dyn Progress>,
    /// Makes this an incremental backup of a directory on top of `parent`
    /// (a backup of the same directory whose file index is in
    /// [`index_dir`](Self::index_dir)).
    pub parent: Option<Manifest>,
    /// Where directory backups keep their file index for later
    /// incrementals (on the backup host; never in the repository). None:
    /// no index is kept.
    pub index_dir: Option<std::path::PathBuf>,
    /// The time to record as the backup's start instead of now (as restic's
    /// `--time`), for imports, schedulers with their own clock, and tests.
    pub time: Option<DateTime<Utc>>,
    /// What a directory backup leaves out. The repository and the index
    /// directory are left out too, when they are inside the directory.
    pub excludes: Excludes,
}

impl BackupOptions {
    /// Defaults: zstd level 3 on all CPUs, fail on unreadable files.
    pub fn new(recipients: Recipients) -> Self {
        BackupOptions {
            recipients,
            name: None,
            pipeline: PipelineOptions::default(),
            skip_unreadable: false,
            progress: Arc::new(NoProgress),
            time: None,
            parent: None,
            index_dir: None,
            excludes: Excludes::default(),
        }
    }

    /// Leaves what `excludes` names out of a directory backup.
    pub fn with_excludes(mut self, excludes: Excludes) -> Self {
        self.excludes = excludes;
        self
    }

    /// Keeps directory backups' file indexes in `dir`, for incrementals.
    pub fn with_index_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.index_dir = Some(dir.into());
        self
    }

    /// Makes an incremental backup on top of `parent`.
    pub fn with_parent(mut self, parent: Manifest) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Records `time` as the backup's start instead of now.
    pub fn with_time(mut self, time: DateTime<Utc>) -> Self {
        self.time = Some(time);
        self
    }

    /// Names the backup.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the zstd level (and a frame size suited to it).
    pub fn with_level(mut self, level: i32) -> Self {
        self.pipeline = self.pipeline.with_level(level);
        self
    }

    /// Sets all pipeline tuning at once.
    pub fn with_pipeline(mut self, pipeline: PipelineOptions) -> Self {
        self.pipeline = pipeline;
        self
    }

    /// Skip unreadable files with a warning instead of failing.
    pub fn with_skip_unreadable(mut self, skip: bool) -> Self {
        self.skip_unreadable = skip;
        self
    }

    /// Report progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }
}

/// Backs up `source` into `store`; see
/// [`Repository::backup`](crate::Repository::backup).
pub(crate) async fn backup(
    store: &dyn Store,
    source: Source,
    opts: &BackupOptions,
    lock: &RepoLock,
) -> Result<Manifest> {
    let name = match &opts.name {
        Some(name) => name.clone(),
        None => source.default_name(),
    };
    check_name(&name)?;
    let payload = source.payload()?;
    let clock = std::time::Instant::now();
    let started_at = opts.time.unwrap_or_else(Utc::now);
    let id = BackupId::generate(started_at);
    let object = match payload {
        Payload::Tar => format!("{DATA_PREFIX}{id}.tar.zst.age"),
        Payload::Raw => format!("{DATA_PREFIX}{id}.zst.age"),
    };
    tracing::info!(%id, %name, store = %store.describe(), "backup started");
    let selection = source.selection()?;
    // Directory trees get an index of their entries (not a volume's tar,
    // which the engine writes).
    let index = match &selection {
        Some(_) => {
            let file = tempfile::tempfile().map_err(|e| {
                Error::Interrupted(format!(
                    "cannot make a temporary file for the backup's index: {e}"
                ))
            })?;
            let spool = Box::new(Sealer::new(&opts.recipients, file)?);
            Some(Arc::new(IndexWriter::new(spool, opts.pipeline.frame_size)?))
        }
        None => None,
    };
    let tracker = tracker(selection.as_ref(), opts, &id)?;
    let filter = match &selection {
        Some(chosen) => {
            let never: Vec<std::path::PathBuf> = store
                .local_root()
                .into_iter()
                .chain(opts.index_dir.as_deref())
                .map(std::path::Path::to_path_buf)
                .collect();
            Filter::new(&chosen.root, &opts.excludes, &never)?.select(&chosen.paths)
        }
        None => Filter::none(),
    };
    let encoded = encode(
        store,
        &object,
        source,
        opts.recipients.clone(),
        &opts.pipeline,
        Reading {
            skip_unreadable: opts.skip_unreadable,
            tracker: tracker.clone(),
            filter,
            index: index.clone(),
        },
        Arc::clone(&opts.progress),
    )
    .await?;
    if let SourceInfo::PostgresBase(base) = &encoded.info {
        crate::wal::await_base_wal(store, base).await?;
    }
    let index = match index {
        Some(index) => {
            let file = index.finish(encoded.measured.sizes.raw, encoded.frames)?;
            Some(store_index(store, &id, file).await?)
        }
        None => None,
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id,
        name,
        source: encoded.info,
        started_at,
        finished_at: started_at + chrono::TimeDelta::from_std(clock.elapsed()).unwrap_or_default(),
        payload,
        object,
        sizes: encoded.measured.sizes,
        sha256: encoded.measured.digests,
        compression: Compression {
            algorithm: "zstd".into(),
            level: opts.pipeline.level,
        },
        encryption: Encryption {
            algorithm: "age".into(),
            recipients: opts.recipients.public_keys(),
            passphrase: opts.recipients.is_passphrase(),
        },
        tool: Tool::current(),
        warnings: encoded.warnings,
        parent: opts.parent.as_ref().map(|p| p.id.clone()),
        index,
    };
    if let Err(e) = still_fits(store, opts.parent.as_ref(), lock).await {
        // Nothing lists these objects: remove them rather than leave them to gc.
        let _ = store.delete(&manifest.object).await;
        if let Some(index) = &manifest.index {
            let _ = store.delete(&index.object).await;
        }
        return Err(e);
    }
    if let Some(tracker) = tracker {
        tracker.commit()?;
    }
    store
        .put_new(&manifest.id.manifest_key(), Bytes::from(manifest.to_json()))
        .await?;
    tracing::info!(id = %manifest.id, stored = manifest.sizes.stored, "backup complete");
    Ok(manifest)
}

/// Right before a backup's manifest is written: its lock is still held
/// and, for an incremental, its parent is still there. (Under the locks no
/// prune runs beside a backup; this catches one that ignored them: a lock
/// removed by force, an old version.)
async fn still_fits(store: &dyn Store, parent: Option<&Manifest>, lock: &RepoLock) -> Result<()> {
    lock.check()?;
    let Some(parent) = parent else {
        return Ok(());
    };
    match store.head(&parent.id.manifest_key()).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Err(Error::Incremental {
            problem: format!(
                "its parent `{}` was removed while it ran, so the new layer would \
                 have nothing to build on; it was discarded (make a full backup)",
                parent.id
            ),
        }),
        Err(e) => Err(e),
    }
}

/// Uploads a finished index and says where it is.
async fn store_index(store: &dyn Store, id: &BackupId, file: std::fs::File) -> Result<IndexObject> {
    use sha2::Digest;
    let object = format!("{DATA_PREFIX}{id}.index.zst.age");
    let hasher = Arc::new(std::sync::Mutex::new(sha2::Sha256::new()));
    let tap = Arc::clone(&hasher);
    let file = tokio::fs::File::from_std(file);
    let chunks = futures::stream::unfold(file, move |mut file| {
        let tap = Arc::clone(&tap);
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 768 << 10];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    tap.lock().unwrap_or_else(|e| e.into_inner()).update(&buf);
                    Some((Ok(Bytes::from(buf)), file))
                }
                Err(e) => Some((Err(crate::error::unwrap_io(e)), file)),
            }
        }
    });
    let meta = store.put(&object, Box::pin(chunks)).await?;
    let digest = hasher
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .finalize();
    Ok(IndexObject {
        object,
        stored: meta.size,
        sha256: crate::manifest::Sha256(digest.into()),
    })
}

/// The file index tracker for a directory backup that keeps an index or
/// builds on a parent.
fn tracker(
    selection: Option<&Selection>,
    opts: &BackupOptions,
    id: &BackupId,
) -> Result<Option<Arc<Tracker>>> {
    let Some(chosen) = selection else {
        return match &opts.parent {
            Some(_) => Err(Error::Incremental {
                problem: "incremental backups are of directories".into(),
            }),
            None => Ok(None),
        };
    };
    let (parent, index_dir) = match (&opts.parent, &opts.index_dir) {
        (None, None) => return Ok(None),
        (None, Some(index_dir)) => (None, index_dir),
        (Some(_), None) => {
            return Err(Error::Incremental {
                problem: "it needs the index directory its parent's file index is in".into(),
            });
        }
        (Some(parent), Some(index_dir)) => {
            crate::incremental::check_parent(parent, &chosen.root, &chosen.relative())?;
            let index = crate::incremental::load(index_dir, &parent.id)?;
            (Some(index), index_dir)
        }
    };
    let tracker = Tracker::new(parent, index_dir, id)?;
    Ok(Some(Arc::new(tracker)))
}

/// Backup names: 1-200 characters without control characters.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidOption {
            option: "backup name",
            problem: format!(
                "`{}` must be 1-200 characters without control characters",
                name.escape_debug()
            ),
        });
    }
    Ok(())
}
