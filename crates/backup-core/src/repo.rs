//! A repository: backups and their manifests in a [`Store`].
//!
//! Layout: `data/ID.tar.zst.age` or `data/ID.zst.age` (the age-encrypted
//! zstd stream), then `manifests/ID.json`, written last.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::keys::{Identities, Recipients};
use crate::manifest::{
    BackupId, Compression, DATA_PREFIX, Encryption, MANIFEST_FORMAT, MANIFEST_PREFIX, Manifest,
    Payload, SourceInfo, Tool,
};
use crate::pipeline::decode::{Expect, decode, decode_stream};
use crate::pipeline::{PipelineOptions, encode::encode};
use crate::progress::{NoProgress, Progress};
use crate::restore::{Plan, RestoreOptions, RestoreReport, RestoreTarget, check_tar};
use crate::source::Source;
use crate::store::{LocalStore, Store, StoreExt, file_stream};

/// Manifests larger than this are refused as damaged.
const MAX_MANIFEST: u64 = 1 << 20;

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
        }
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

/// Which backup: an id, or the newest one (optionally of one name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupRef {
    /// This id.
    Id(BackupId),
    /// The most recently finished backup.
    Latest {
        /// Only backups with this name.
        name: Option<String>,
    },
}

impl FromStr for BackupRef {
    type Err = String;

    /// `latest` or a backup id.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "latest" {
            Ok(BackupRef::Latest { name: None })
        } else {
            s.parse().map(BackupRef::Id)
        }
    }
}

impl fmt::Display for BackupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupRef::Id(id) => write!(f, "{id}"),
            BackupRef::Latest { name: None } => f.write_str("latest"),
            BackupRef::Latest { name: Some(n) } => write!(f, "latest `{n}`"),
        }
    }
}

/// The backups in a repository, oldest first, and manifests that could not
/// be read.
#[derive(Debug, Default)]
pub struct Listing {
    /// Readable manifests, ordered by finish time.
    pub backups: Vec<Manifest>,
    /// One error per unreadable manifest.
    pub broken: Vec<Error>,
}

/// What a verify checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The backup verified.
    pub id: BackupId,
    /// Stored bytes read, decrypted and hashed.
    pub stored: u64,
    /// Plaintext bytes produced and hashed.
    pub raw: u64,
    /// Tar entries walked, for directory backups.
    pub entries: Option<u64>,
}

/// Backups in a store: make, list, find, restore and verify them.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn Store>,
}

impl Repository {
    /// A repository in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Repository { store }
    }

    /// A repository in a local directory (created on the first backup).
    pub fn local(path: impl Into<std::path::PathBuf>) -> Self {
        Repository::new(Arc::new(LocalStore::new(path)))
    }

    /// Opens the repository a location names: a local directory, or
    /// `s3://BUCKET/PREFIX` (with the `s3` feature, default S3 settings;
    /// credentials, region and endpoint from the standard AWS
    /// configuration).
    pub async fn open(location: &str) -> Result<Self> {
        if !location.starts_with("s3://") {
            return Ok(Repository::local(location));
        }
        #[cfg(feature = "s3")]
        {
            Repository::open_with(location, crate::S3Options::default()).await
        }
        #[cfg(not(feature = "s3"))]
        {
            let parsed: crate::S3Location = location.parse()?;
            Err(Error::Config(format!(
                "{parsed}: this build has no S3 support (the `s3` feature of backup-core)"
            )))
        }
    }

    /// [`open`](Self::open) with S3 settings.
    #[cfg(feature = "s3")]
    pub async fn open_with(location: &str, s3: crate::S3Options) -> Result<Self> {
        if !location.starts_with("s3://") {
            return Ok(Repository::local(location));
        }
        let store = crate::S3Store::connect(location.parse()?, s3).await?;
        Ok(Repository::new(Arc::new(store)))
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Backs up `source`: streams it through zstd and age into the store,
    /// then writes its manifest. Returns the manifest.
    ///
    /// On failure no manifest is written, so nothing is listed; the store
    /// discards the partial data object (a process killed mid-way can leave
    /// a hidden temporary file or, for S3, an incomplete upload, which `gc`
    /// removes).
    pub async fn backup(&self, source: Source, opts: &BackupOptions) -> Result<Manifest> {
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
        tracing::info!(%id, %name, store = %self.store.describe(), "backup started");
        let tracker = self.tracker(&source, opts, &id)?;
        let encoded = encode(
            self.store.as_ref(),
            &object,
            source,
            opts.recipients.clone(),
            &opts.pipeline,
            crate::pipeline::encode::Reading {
                skip_unreadable: opts.skip_unreadable,
                tracker: tracker.clone(),
            },
            Arc::clone(&opts.progress),
        )
        .await?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id,
            name,
            source: encoded.info,
            started_at,
            finished_at: started_at
                + chrono::TimeDelta::from_std(clock.elapsed()).unwrap_or_default(),
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
        };
        if let Some(tracker) = tracker {
            tracker.commit()?;
        }
        self.store
            .put_bytes(&manifest.id.manifest_key(), Bytes::from(manifest.to_json()))
            .await?;
        tracing::info!(id = %manifest.id, stored = manifest.sizes.stored, "backup complete");
        Ok(manifest)
    }

    /// The file index tracker for a directory backup that keeps an index or
    /// builds on a parent.
    fn tracker(
        &self,
        source: &Source,
        opts: &BackupOptions,
        id: &BackupId,
    ) -> Result<Option<Arc<crate::incremental::Tracker>>> {
        let dir = match source {
            Source::Path(p) if p.is_dir() => p,
            _ => {
                return match &opts.parent {
                    Some(_) => Err(Error::Config(
                        "incremental backups are for directories".into(),
                    )),
                    None => Ok(None),
                };
            }
        };
        let (parent, index_dir) = match (&opts.parent, &opts.index_dir) {
            (None, None) => return Ok(None),
            (None, Some(index_dir)) => (None, index_dir),
            (Some(_), None) => {
                return Err(Error::Config(
                    "an incremental backup needs the index directory its parent's index is in"
                        .into(),
                ));
            }
            (Some(parent), Some(index_dir)) => {
                crate::incremental::check_parent(parent, dir)?;
                let index = crate::incremental::load(index_dir, &parent.id)?;
                (Some(index), index_dir)
            }
        };
        let tracker = crate::incremental::Tracker::new(parent, index_dir, id)?;
        Ok(Some(Arc::new(tracker)))
    }

    /// Imports an existing age-encrypted zstd file, such as one made by
    /// `tar -c DIR | zstd | age -r KEY > FILE`, as a backup named `name`.
    ///
    /// The file is decrypted and decompressed once to measure it (sizes,
    /// SHA-256 of plaintext and stored bytes; a tar stream is also walked),
    /// then stored unchanged, then its manifest is written. The recipients
    /// recorded are those of `identities` that open it (age files do not
    /// name their recipients); the zstd level is recorded as 0, unknown.
    pub async fn import(
        &self,
        path: &std::path::Path,
        identities: &Identities,
        name: Option<String>,
        progress: Arc<dyn Progress>,
    ) -> Result<Manifest> {
        let name = name.unwrap_or_else(|| import_name(path));
        check_name(&name)?;
        let started_at = Utc::now();
        let id = BackupId::generate(started_at);
        let (recipients, passphrase) = {
            let (path, ids, id) = (path.to_owned(), identities.clone(), id.to_string());
            crate::pipeline::on_thread(move || crate::import::openers(&path, &ids, &id)).await?
        };
        let open = |path: &std::path::Path| {
            std::fs::File::open(path).map_err(|e| crate::source::source_err(path, e))
        };
        let expect = Expect {
            id: id.to_string(),
            recipients: recipients.clone(),
            encrypted_to: recipients.join(", "),
            values: None,
        };
        let stream = file_stream(open(path)?, path.display().to_string(), String::new());
        let (measured, entries) =
            decode_stream(stream, expect, identities, progress, crate::import::sniff).await?;
        let payload = if entries.is_some() {
            Payload::Tar
        } else {
            Payload::Raw
        };
        let object = match payload {
            Payload::Tar => format!("{DATA_PREFIX}{id}.tar.zst.age"),
            Payload::Raw => format!("{DATA_PREFIX}{id}.zst.age"),
        };
        // Store the file unchanged, checking it is still what was measured.
        let stored = self
            .store
            .put(
                &object,
                file_stream(open(path)?, path.display().to_string(), String::new()),
            )
            .await?;
        if stored.size != measured.sizes.stored {
            let _ = self.store.delete(&object).await;
            return Err(Error::Source {
                what: path.display().to_string(),
                source: std::io::Error::other("the file changed while it was imported"),
            });
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id,
            name,
            source: SourceInfo::Imported {
                path: path.to_string_lossy().into_owned(),
                entries,
            },
            started_at,
            finished_at: Utc::now(),
            payload,
            object,
            sizes: measured.sizes,
            sha256: measured.digests,
            compression: Compression {
                algorithm: "zstd".into(),
                level: 0,
            },
            encryption: Encryption {
                algorithm: "age".into(),
                recipients,
                passphrase,
            },
            tool: Tool::current(),
            warnings: Vec::new(),
            parent: None,
        };
        // A file swapped between the two reads is caught here: verify the
        // stored copy against what was measured before publishing it.
        if let Err(e) = self
            .verify(&manifest, identities, Arc::new(NoProgress))
            .await
        {
            let _ = self.store.delete(&manifest.object).await;
            return Err(e);
        }
        self.store
            .put_bytes(&manifest.id.manifest_key(), Bytes::from(manifest.to_json()))
            .await?;
        Ok(manifest)
    }

    /// Every backup, oldest first. Unreadable manifests are reported in
    /// [`Listing::broken`] rather than failing the whole listing.
    pub async fn list(&self) -> Result<Listing> {
        let mut listing = Listing::default();
        for object in self.store.list(MANIFEST_PREFIX).await? {
            let Some(id) = object
                .key
                .strip_prefix(MANIFEST_PREFIX)
                .and_then(|k| k.strip_suffix(".json"))
                .and_then(|id| id.parse::<BackupId>().ok())
            else {
                continue;
            };
            match self.read_manifest(&id).await {
                Ok(m) => listing.backups.push(m),
                Err(e) => listing.broken.push(e),
            }
        }
        listing
            .backups
            .sort_by(|a, b| (a.finished_at, &a.id).cmp(&(b.finished_at, &b.id)));
        Ok(listing)
    }

    /// Finds a backup's manifest.
    pub async fn find(&self, which: &BackupRef) -> Result<Manifest> {
        match which {
            BackupRef::Id(id) => self.read_manifest(id).await,
            BackupRef::Latest { name } => {
                let listing = self.list().await?;
                listing
                    .backups
                    .into_iter()
                    .rev()
                    .find(|m| name.as_ref().is_none_or(|n| &m.name == n))
                    .ok_or_else(|| Error::BackupNotFound {
                        id: which.to_string(),
                        store: self.store.describe(),
                        hint: match listing.broken.len() {
                            0 => " (it holds no backups)".into(),
                            n => format!(" ({n} manifests could not be read)"),
                        },
                    })
            }
        }
    }

    async fn read_manifest(&self, id: &BackupId) -> Result<Manifest> {
        let key = id.manifest_key();
        let bytes = match self.store.get_bytes(&key, MAX_MANIFEST).await {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Err(self.not_found(id).await),
            Err(e) => return Err(e),
        };
        let m = Manifest::from_json(&bytes).map_err(|reason| Error::InvalidManifest {
            key: key.clone(),
            reason,
        })?;
        if &m.id != id {
            return Err(Error::InvalidManifest {
                key,
                reason: format!("it describes backup `{}`", m.id),
            });
        }
        Ok(m)
    }

    /// A not-found error that says when a data object without a manifest
    /// (an interrupted backup) exists.
    async fn not_found(&self, id: &BackupId) -> Error {
        let orphan = self
            .store
            .list(&format!("{DATA_PREFIX}{id}."))
            .await
            .is_ok_and(|found| !found.is_empty());
        Error::BackupNotFound {
            id: id.to_string(),
            store: self.store.describe(),
            hint: if orphan {
                ": its data object exists but it has no manifest, so the backup never \
                 completed and cannot be trusted"
                    .into()
            } else {
                " (run `backupctl list` to see the backups)".into()
            },
        }
    }

    /// Restores a backup to `target`, checking every digest on the way.
    ///
    /// Nothing appears at a new target path unless the whole restore checks
    /// out: directories are extracted into a hidden sibling and renamed, files
    /// are written to a temporary name and renamed. Restoring over an existing
    /// directory (with `force`) or into a stream can leave partial data when
    /// the backup turns out to be damaged; the error says so.
    pub async fn restore(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        target: RestoreTarget,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        if manifest.parent.is_some() {
            return self.restore_chain(manifest, identities, target, opts).await;
        }
        let plan = Plan::new(manifest, target, opts.force)?;
        let described = plan.describe();
        let shared = Arc::new(Mutex::new(Some(plan)));
        let sink_plan = Arc::clone(&shared);
        let result = decode(
            self.store.as_ref(),
            manifest,
            identities,
            Arc::clone(&opts.progress),
            move |input| {
                let mut guard = sink_plan.lock().unwrap_or_else(|e| e.into_inner());
                match guard.as_mut() {
                    Some(plan) => plan.write(input),
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

    /// The chain an incremental backup builds on, oldest (the full backup)
    /// first, ending with `manifest`.
    pub async fn chain(&self, manifest: &Manifest) -> Result<Vec<Manifest>> {
        let mut chain = vec![manifest.clone()];
        while let Some(parent) = chain.last().and_then(|m| m.parent.clone()) {
            if chain.iter().any(|m| m.id == parent) || chain.len() > 10_000 {
                return Err(Error::Corrupt {
                    id: manifest.id.to_string(),
                    problem: "its chain of parents loops".into(),
                });
            }
            let child = chain.last().map(|m| m.id.to_string()).unwrap_or_default();
            match self.read_manifest(&parent).await {
                Ok(m) => chain.push(m),
                Err(e) if e.is_not_found() || matches!(e, Error::BackupNotFound { .. }) => {
                    return Err(Error::Corrupt {
                        id: manifest.id.to_string(),
                        problem: format!(
                            "it builds on {child}, whose parent {parent} is missing: the chain \
                             is broken"
                        ),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        chain.reverse();
        Ok(chain)
    }

    /// Restores an incremental: the full backup, then each layer, removing
    /// what each layer lists before extracting it, into a staging directory
    /// renamed to the target once every link checked out.
    async fn restore_chain(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        target: RestoreTarget,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        let chain = self.chain(manifest).await?;
        if matches!(target, RestoreTarget::Writer(_)) {
            return Err(Error::Config(format!(
                "backup {} is incremental: it restores to a directory (its chain of {} \
                 backups is applied there), not to a stream",
                manifest.id,
                chain.len()
            )));
        }
        let plan = Plan::new(&chain[0], target, opts.force)?;
        let described = plan.describe();
        let into = match &plan {
            Plan::Extract { dir, staging } => staging.clone().unwrap_or_else(|| dir.clone()),
            _ => {
                return Err(Error::Config(format!(
                    "backup {} is not a directory backup",
                    chain[0].id
                )));
            }
        };
        let mut entries = 0;
        for (i, link) in chain.iter().enumerate() {
            let dir = into.clone();
            let result = decode(
                self.store.as_ref(),
                link,
                identities,
                Arc::clone(&opts.progress),
                move |input| crate::restore::extract(input, &dir, i > 0),
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
        })
    }

    /// Verifies a backup without writing anything: streams the stored
    /// object, decrypts and decompresses it, and checks sizes and SHA-256
    /// digests against the manifest (and, for directory backups, that the
    /// archive is well-formed and has the recorded number of entries).
    pub async fn verify(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        progress: Arc<dyn Progress>,
    ) -> Result<VerifyReport> {
        let payload = manifest.payload;
        let entries = decode(
            self.store.as_ref(),
            manifest,
            identities,
            progress,
            move |input| match payload {
                Payload::Tar => check_tar(input).map(Some),
                Payload::Raw => Ok(None),
            },
        )
        .await?;
        let want = match &manifest.source {
            SourceInfo::Directory { entries, .. } => Some(*entries),
            SourceInfo::Imported { entries, .. } => *entries,
            _ => None,
        };
        if let (Some(found), Some(want)) = (entries, want) {
            if found != want {
                return Err(Error::Corrupt {
                    id: manifest.id.to_string(),
                    problem: format!("the archive has {found} entries, the manifest says {want}"),
                });
            }
        }
        Ok(VerifyReport {
            id: manifest.id.clone(),
            stored: manifest.sizes.stored,
            raw: manifest.sizes.raw,
            entries,
        })
    }
}

/// `etc.tar.zst.age` -> `etc`.
fn import_name(path: &std::path::Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = file.as_str();
    for ext in [".age", ".zst", ".zstd", ".tar"] {
        stem = stem.strip_suffix(ext).unwrap_or(stem);
    }
    if stem.is_empty() {
        "imported".into()
    } else {
        stem.to_owned()
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::Config(format!(
            "backup name `{}` must be 1-200 characters without control characters",
            name.escape_debug()
        )));
    }
    Ok(())
}
