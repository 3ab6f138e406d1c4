//! A repository: backups and their manifests in a [`Store`], and
//! everything that can be done with them.
//!
//! Layout: the format record `shipshape-repository.json`, `data/ID.tar.zst.age` or `data/ID.zst.age` (the age-encrypted
//! zstd stream), then `manifests/ID.json`, written last, and the jobs' run
//! history under `history/JOB/`. This file is the whole public face of a
//! repository; each method's work is in its own file under `ops/` (and
//! `postgres/`, `docker/` for those targets).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;

use crate::error::Result;
use crate::keys::Identities;
use crate::lock::{FoundLock, LockKind, LockOptions, RepoLock};
use crate::manifest::Manifest;
use crate::ops::backup::BackupOptions;
use crate::ops::gc::GcReport;
use crate::ops::history::RunRecord;
use crate::ops::init::RepositoryInfo;
use crate::ops::list::{BackupRef, Listing};
use crate::ops::restore::{RestoreOptions, RestoreReport, RestoreTarget};
use crate::ops::verify::VerifyReport;
use crate::ops::{backup, gc, history, import, init, list, prune, restore, verify};
use crate::progress::Progress;
use crate::retention::{Policy, PrunePlan};
use crate::source::Source;
use crate::store::{LocalStore, Store};

/// Backups in a store: make, list, find, restore, verify and remove them.
///
/// Cheap to clone (the store is shared). Every method streams: memory
/// does not grow with the size of a backup.
///
/// Every operation takes a [repository lock](crate::lock): shared for
/// those that add or read, exclusive for those that delete, so a prune
/// never runs beside a backup, on this host or another.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Arc<dyn Store>,
    locks: LockOptions,
}

impl Repository {
    /// A repository in `store`, with the default [`LockOptions`]: no
    /// waiting for a conflicting lock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Repository {
            store,
            locks: LockOptions::default(),
        }
    }

    /// Takes and keeps locks as `locks` says (how long to wait for
    /// another process's lock, when locks go stale).
    pub fn with_locks(mut self, locks: LockOptions) -> Self {
        self.locks = locks;
        self
    }

    /// The lock settings.
    pub fn locks(&self) -> &LockOptions {
        &self.locks
    }

    async fn lock(&self, kind: LockKind, operation: &str) -> Result<RepoLock> {
        RepoLock::acquire(Arc::clone(&self.store), kind, operation, &self.locks).await
    }

    /// Runs `work` under a shared lock.
    async fn shared<T>(&self, operation: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
        let lock = self.lock(LockKind::Shared, operation).await?;
        crate::lock::finish(lock, work.await).await
    }

    /// Every lock object in the repository, with whether it is stale.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn list_locks(&self) -> Result<Vec<FoundLock>> {
        crate::lock::list(self.store.as_ref(), self.locks.stale).await
    }

    /// Removes stale locks, or with `force` every lock (whose holders, if
    /// alive, stop at their next change: see [`crate::lock`]). Returns
    /// every lock found, each with whether it was removed.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn unlock(&self, force: bool) -> Result<Vec<(FoundLock, bool)>> {
        crate::lock::unlock(self.store.as_ref(), self.locks.stale, force).await
    }

    /// A repository in a local directory (created on the first backup).
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Repository::new(Arc::new(LocalStore::new(path)))
    }

    /// Opens the repository a location names: a local directory, or
    /// `s3://BUCKET/PREFIX` (with the `s3` feature, default S3 settings;
    /// credentials, region and endpoint from the standard AWS
    /// configuration).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLocation`](crate::Error::InvalidLocation) for an
    /// `s3://` location without a bucket, [`Error::Unsupported`](crate::Error::Unsupported)
    /// for S3 in a build without it, and S3 set-up errors.
    pub async fn open(location: &str) -> Result<Self> {
        crate::store::open(location).await.map(Repository::new)
    }

    /// [`open`](Self::open) with S3 settings.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), and when the settings are out of range.
    #[cfg(feature = "s3")]
    pub async fn open_with(location: &str, s3: crate::S3Options) -> Result<Self> {
        crate::store::open_with(location, s3)
            .await
            .map(Repository::new)
    }

    /// Creates the repository: writes its format record. A location that
    /// has backups from before format records existed is adopted.
    ///
    /// # Errors
    ///
    /// [`Error::RepositoryExists`](crate::Error::RepositoryExists) when
    /// there is a repository already, or a store failure.
    pub async fn init(&self) -> Result<RepositoryInfo> {
        init::init(self.store.as_ref()).await
    }

    /// Succeeds when there is a repository here (a format record, or
    /// backups made before records existed). Call it before working on a
    /// location a user typed: a backup into a mistyped location would
    /// otherwise start a new, empty repository, and a listing would say
    /// "no backups".
    ///
    /// # Errors
    ///
    /// [`Error::RepositoryMissing`](crate::Error::RepositoryMissing), a
    /// damaged or newer format record, or a store failure.
    pub async fn check(&self) -> Result<()> {
        init::check(self.store.as_ref()).await
    }

    /// The format record, when the repository has one.
    ///
    /// # Errors
    ///
    /// A damaged or newer format record, or a store failure.
    pub async fn info(&self) -> Result<Option<RepositoryInfo>> {
        init::read(self.store.as_ref()).await
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
    /// a hidden temporary file or, for S3, an incomplete upload, which
    /// [`gc`](Self::gc) removes).
    ///
    /// # Errors
    ///
    /// When the source cannot be read (or its command fails), the options
    /// are out of range, an incremental's parent does not fit, or the
    /// store fails.
    pub async fn backup(&self, source: Source, opts: &BackupOptions) -> Result<Manifest> {
        let lock = self.lock(LockKind::Shared, "backup").await?;
        let made = backup::backup(self.store.as_ref(), source, opts, &lock).await;
        crate::lock::finish(lock, made).await
    }

    /// Imports an existing age-encrypted zstd file, such as one made by
    /// `tar -c DIR | zstd | age -r KEY > FILE`, as a backup named `name`
    /// (default: the file name without `.tar.zst.age`).
    ///
    /// The file is decrypted and decompressed once to measure it (sizes,
    /// SHA-256 of plaintext and stored bytes; a tar stream is also walked),
    /// then stored unchanged and checked again, then its manifest is
    /// written. The recipients recorded are the given identities' public
    /// keys that open it; the zstd level is recorded as 0, unknown.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, is not an age file the identities
    /// open, is damaged, or changes while it is imported.
    pub async fn import(
        &self,
        path: &Path,
        identities: &Identities,
        name: Option<String>,
        progress: Arc<dyn Progress>,
    ) -> Result<Manifest> {
        let work = import::import(self.store.as_ref(), path, identities, name, progress);
        self.shared("import", work).await
    }

    /// Every backup, oldest first. Unreadable manifests are reported in
    /// [`Listing::broken`] rather than failing the whole listing.
    ///
    /// # Errors
    ///
    /// When the store cannot be listed.
    pub async fn list(&self) -> Result<Listing> {
        list::list(self.store.as_ref()).await
    }

    /// Finds a backup's manifest.
    ///
    /// # Errors
    ///
    /// [`Error::BackupNotFound`](crate::Error::BackupNotFound) (saying so
    /// when only an interrupted backup's data is there), an invalid
    /// manifest, or a store failure.
    pub async fn find(&self, which: &BackupRef) -> Result<Manifest> {
        list::find(self.store.as_ref(), which).await
    }

    /// The chain an incremental backup builds on, oldest (the full backup)
    /// first, ending with `manifest`.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`](crate::Error::Corrupt) when a parent is missing
    /// or the chain loops.
    pub async fn chain(&self, manifest: &Manifest) -> Result<Vec<Manifest>> {
        list::chain(self.store.as_ref(), manifest).await
    }

    /// Restores a backup to `target`, checking every digest on the way; an
    /// incremental restores its whole chain.
    ///
    /// Nothing appears at a new target path unless the whole restore checks
    /// out: directories are extracted into a hidden sibling and renamed,
    /// files are written to a temporary name and renamed. Restoring over an
    /// existing directory (with `force`) or into a stream can leave partial
    /// data when the backup turns out to be damaged; the error says so.
    ///
    /// # Errors
    ///
    /// [`Error::TargetNotEmpty`](crate::Error::TargetNotEmpty) without
    /// `force`, a wrong key, a damaged backup, or a write failure.
    pub async fn restore(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        target: RestoreTarget,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        let work = restore::restore(self.store.as_ref(), manifest, identities, target, opts);
        self.shared("restore", work).await
    }

    /// Lists the entries of a directory backup at or below `under` (a path
    /// as the listing names them; `.` or empty for all), in archive order,
    /// handing each to `each`. A backup with an index (every directory
    /// backup made by this version) is listed from the index alone; an
    /// older one by streaming its data. An incremental lists what its own
    /// layer stored.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKind`](crate::Error::WrongKind) for a backup of a
    /// file or stream, a wrong key, a damaged backup or index, or an error
    /// `each` returns.
    pub async fn ls(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        under: &str,
        each: impl FnMut(crate::index::Entry) -> Result<()> + Send + 'static,
    ) -> Result<crate::ops::ls::Listed> {
        crate::ops::ls::ls(self.store.as_ref(), manifest, identities, under, each).await
    }

    /// Verifies a backup without writing anything: streams the stored
    /// object, decrypts and decompresses it, and checks sizes and SHA-256
    /// digests against the manifest (and, for directory backups, that the
    /// archive is well-formed and has the recorded number of entries).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`](crate::Error::Corrupt) for any mismatch,
    /// [`Error::WrongKey`](crate::Error::WrongKey), or a store failure.
    pub async fn verify(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        progress: Arc<dyn Progress>,
    ) -> Result<VerifyReport> {
        let work = verify::verify(self.store.as_ref(), manifest, identities, progress);
        self.shared("verify", work).await
    }

    /// Applies `policy` (periods in `zone`) to the backups named `name`, or
    /// to every name, and, if `apply`, removes the backups it does not keep:
    /// each backup's manifest first (so it is no longer listed), then its
    /// data object. Returns the plan, with why each kept backup is kept.
    ///
    /// # Errors
    ///
    /// [`Error::UnreadableManifests`](crate::Error::UnreadableManifests)
    /// while any manifest is unreadable (it might be a backup that an
    /// incremental needs, or the newest of its name), or a store failure.
    pub async fn prune<Z: TimeZone>(
        &self,
        policy: &Policy,
        zone: &Z,
        name: Option<&str>,
        apply: bool,
    ) -> Result<PrunePlan> {
        let lock = self.lock(LockKind::Exclusive, "prune").await?;
        let pruned = prune::prune(self.store.as_ref(), policy, zone, name, apply, &lock).await;
        crate::lock::finish(lock, pruned).await
    }

    /// Removes one backup: its manifest, then its data object.
    ///
    /// # Errors
    ///
    /// When the store fails (an object already gone is not an error).
    pub async fn remove(&self, manifest: &Manifest) -> Result<()> {
        let lock = self.lock(LockKind::Exclusive, "remove").await?;
        let removed = prune::remove_one(self.store.as_ref(), manifest, &lock).await;
        crate::lock::finish(lock, removed).await
    }

    /// Finds what failed and killed backups left behind — unfinished
    /// writes and data objects no manifest references — older than
    /// `older_than` and, if `apply`, removes them.
    ///
    /// # Errors
    ///
    /// [`Error::UnreadableManifests`](crate::Error::UnreadableManifests)
    /// while any manifest is unreadable (the object it references cannot
    /// be known), or a store failure.
    pub async fn gc(&self, older_than: Duration, apply: bool) -> Result<GcReport> {
        let lock = self.lock(LockKind::Exclusive, "gc").await?;
        let collected = gc::gc(self.store.as_ref(), older_than, apply, &lock).await;
        crate::lock::finish(lock, collected).await
    }

    /// Stores a job's run record in the history.
    ///
    /// # Errors
    ///
    /// When the job name is not a valid one, or the store fails.
    pub async fn record_run(&self, record: &RunRecord) -> Result<()> {
        history::record(self.store.as_ref(), record).await
    }

    /// The run history of `job` (or of every job), oldest first. Records
    /// that cannot be read are skipped with a warning in the log.
    ///
    /// # Errors
    ///
    /// When the job name is not a valid one, or the store fails.
    pub async fn history(&self, job: Option<&str>) -> Result<Vec<RunRecord>> {
        history::history(self.store.as_ref(), job).await
    }

    /// One run record by its store key (under
    /// [`HISTORY_PREFIX`](crate::HISTORY_PREFIX)); `None` when the object
    /// is not a run record.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn run_record(&self, key: &str) -> Result<Option<RunRecord>> {
        history::run_record(self.store.as_ref(), key).await
    }

    /// Restores a PostgreSQL backup into `target`'s database.
    ///
    /// A database backup goes through `pg_restore` in one transaction, so a
    /// failure (a pg_restore error, or damage found in the backup) leaves
    /// the database as it was. The database is created when missing; one
    /// that already holds tables is refused unless `opts.force`. A globals
    /// backup is run through `psql`; roles that already exist are reported
    /// as warnings.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKind`](crate::Error::WrongKind) for a backup that is
    /// not of PostgreSQL, [`Error::TargetNotEmpty`](crate::Error::TargetNotEmpty),
    /// [`Error::Postgres`](crate::Error::Postgres) for the server's and the
    /// tools' failures, and the errors of [`restore`](Self::restore).
    #[cfg(feature = "postgres")]
    pub async fn restore_postgres(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        target: &crate::postgres::PgTarget,
        opts: &crate::postgres::PgRestoreOptions,
    ) -> Result<crate::postgres::PgRestoreReport> {
        let work =
            crate::postgres::restore(self.store.as_ref(), manifest, identities, target, opts);
        self.shared("restore", work).await
    }

    /// Restore drill: restores a database backup into a new scratch
    /// database on `server` (a URL of any database there that the user can
    /// connect to, e.g. `postgres`), counts every table's rows, compares
    /// them with the manifest, and drops the scratch database again, also
    /// when the restore fails or `interrupt` completes first (e.g. on
    /// Ctrl-C, which then ends the drill with an error).
    ///
    /// Damage found in the backup and pg_restore's errors are reported in
    /// [`DrillReport::restore_errors`](crate::postgres::DrillReport::restore_errors)
    /// next to the table-by-table counts of whatever did restore.
    ///
    /// # Errors
    ///
    /// When the drill itself cannot run: no server, no permission to
    /// create databases, a backup of roles rather than a database, or
    /// `interrupt`.
    #[cfg(feature = "postgres")]
    pub async fn restore_drill(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        server: &crate::postgres::PgTarget,
        opts: &crate::postgres::PgRestoreOptions,
        interrupt: impl Future<Output = ()> + Send,
    ) -> Result<crate::postgres::DrillReport> {
        let work = crate::postgres::drill(
            self.store.as_ref(),
            manifest,
            identities,
            server,
            opts,
            interrupt,
        );
        self.shared("restore drill", work).await
    }

    /// Restores a PostgreSQL base backup into the directory `dir` (new or
    /// empty) and recovers it to `opts.to` with the archived WAL, proving
    /// the target is reached: a throwaway server on a private socket
    /// replays the WAL as a hot standby and must pause at the target (or,
    /// for `latest`, replay into the newest archived segment). Then `dir`
    /// is left with `recovery.signal` and the recovery settings in
    /// `postgresql.auto.conf`: the first start finishes and promotes. On
    /// failure or `interrupt` the server is stopped and a `dir` this call
    /// created is removed.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKind`](crate::Error::WrongKind) for a backup that is
    /// not a base backup, [`Error::WalGap`](crate::Error::WalGap) naming
    /// a missing segment, [`Error::Recovery`](crate::Error::Recovery) when
    /// the target is not reached, and the errors of
    /// [`restore`](Self::restore).
    #[cfg(feature = "postgres")]
    pub async fn recover_postgres(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        dir: &Path,
        opts: &crate::postgres::RecoverOptions,
        interrupt: impl Future<Output = ()> + Send,
    ) -> Result<crate::postgres::RecoveryReport> {
        let work = crate::postgres::recover(
            self.store.as_ref(),
            manifest,
            identities,
            dir,
            opts,
            interrupt,
        );
        self.shared("restore", work).await
    }

    /// Restore drill of a base backup: restored into a temporary
    /// directory, recovered to `to` (None: a WAL position picked at random
    /// inside the archived window) exactly as
    /// [`recover_postgres`](Self::recover_postgres) proves it, every
    /// table of every database counted, and everything deleted again,
    /// also on failure and `interrupt`. The report carries the achieved
    /// RPO (the newest archived WAL's age) and RTO (the drill's
    /// duration).
    ///
    /// # Errors
    ///
    /// Those of [`recover_postgres`](Self::recover_postgres).
    #[cfg(feature = "postgres")]
    pub async fn drill_physical(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        opts: &crate::postgres::RecoverOptions,
        to: Option<crate::postgres::RecoveryTarget>,
        interrupt: impl Future<Output = ()> + Send,
    ) -> Result<crate::postgres::PhysicalDrillReport> {
        let work = crate::postgres::drill_physical(
            self.store.as_ref(),
            manifest,
            identities,
            opts,
            to,
            interrupt,
        );
        self.shared("restore drill", work).await
    }

    /// Streams a server's WAL into the repository (`pg_receivewal` through
    /// a replication slot, every finished segment stored through the
    /// pipeline, the one being written stored as `.partial` every
    /// `opts.partial_every`) until `shutdown` completes. Connection
    /// losses are retried; `state` tells what was stored and what failed.
    ///
    /// # Errors
    ///
    /// When `pg_receivewal` is missing or the spool cannot be made.
    #[cfg(feature = "postgres")]
    pub async fn stream_wal(
        &self,
        target: &crate::postgres::PgTarget,
        recipients: &crate::Recipients,
        opts: &crate::postgres::StreamOptions,
        state: Arc<std::sync::Mutex<crate::postgres::StreamState>>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        crate::postgres::stream(
            &self.store,
            &self.locks,
            target,
            recipients,
            opts,
            state,
            shutdown,
        )
        .await
    }

    /// Restores a Docker volume backup into `volume` (created when
    /// missing; refused when it holds anything, unless `opts.force`),
    /// streaming the plaintext into the engine as it is decrypted.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKind`](crate::Error::WrongKind) for a backup that is
    /// not of a volume, [`Error::TargetNotEmpty`](crate::Error::TargetNotEmpty),
    /// [`Error::Docker`](crate::Error::Docker) for the engine's failures,
    /// and the errors of [`restore`](Self::restore).
    #[cfg(feature = "docker")]
    pub async fn restore_volume(
        &self,
        manifest: &Manifest,
        identities: &Identities,
        volume: &str,
        opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        let work = crate::docker::restore(self.store.as_ref(), manifest, identities, volume, opts);
        self.shared("restore", work).await
    }

    /// Archives one WAL file (PostgreSQL's `archive_command`): stored
    /// through the pipeline, encrypted to `recipients`, then its record
    /// written. A file archived before with the same content is accepted
    /// without writing anything.
    ///
    /// # Errors
    ///
    /// [`Error::WalConflict`](crate::Error::WalConflict) when the
    /// repository holds the same name with other content,
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for a file
    /// name PostgreSQL does not archive, and the store's errors.
    pub async fn wal_push(
        &self,
        path: &Path,
        recipients: &crate::Recipients,
        pipeline: &crate::PipelineOptions,
    ) -> Result<crate::wal::Pushed> {
        let work = crate::wal::push(self.store.as_ref(), path, recipients, pipeline);
        self.shared("wal-push", work).await
    }

    /// Fetches one archived WAL file into `dest` (PostgreSQL's
    /// `restore_command`), checked against its record; `dest` appears only
    /// once every check passed.
    ///
    /// # Errors
    ///
    /// [`Error::WalMissing`](crate::Error::WalMissing) when it is not
    /// archived, [`Error::Corrupt`](crate::Error::Corrupt) and the
    /// pipeline's errors when it does not decrypt to what was archived.
    pub async fn wal_fetch(
        &self,
        name: &crate::wal::WalName,
        dest: &Path,
        identities: &Identities,
    ) -> Result<crate::wal::WalRecord> {
        crate::wal::fetch(self.store.as_ref(), name, dest, identities).await
    }

    /// Every archived WAL file, sorted by name.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn wal_list(&self) -> Result<Vec<crate::wal::WalName>> {
        crate::wal::list(self.store.as_ref()).await
    }

    /// Checks the WAL archive from every base backup in the repository:
    /// the segments each needs from its start to the newest archived one
    /// along its timelines, and the ones missing. Needs no key (timeline
    /// histories are read from the records).
    ///
    /// # Errors
    ///
    /// The store's, and unreadable manifests or records.
    pub async fn wal_verify(&self) -> Result<Vec<crate::wal::BaseCoverage>> {
        let listing = self.list().await?;
        crate::wal::verify(self.store.as_ref(), &listing.backups).await
    }

    /// What each WAL streamer (`wal stream`, a daemon's physical job) last
    /// reported about itself.
    ///
    /// # Errors
    ///
    /// The store's.
    pub async fn wal_streams(&self) -> Result<Vec<crate::wal::StreamReport>> {
        crate::wal::stream_reports(self.store.as_ref()).await
    }

    /// The record of an archived WAL file, if it is archived.
    ///
    /// # Errors
    ///
    /// The store's, and an unreadable record.
    pub async fn wal_record(
        &self,
        name: &crate::wal::WalName,
    ) -> Result<Option<crate::wal::WalRecord>> {
        crate::wal::record(self.store.as_ref(), name).await
    }
}
