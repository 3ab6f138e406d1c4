//! The crate's error type.
//!
//! Every variant names what failed and on what (a backup id, an object key,
//! a path) so a caller can branch on it and a person can act on it. No
//! variant ever carries key material or passphrases.

use std::io;
use std::path::{Path, PathBuf};

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in backup-core.
///
/// Messages say what failed, on what, and what to do, in the library's
/// words: they never name a command-line flag (a binary adds those, e.g.
/// for [`Error::TargetNotEmpty`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist in the store.
    #[error("object `{key}` not found in {store}")]
    NotFound {
        /// The store, as it describes itself.
        store: String,
        /// The missing object's key.
        key: String,
    },

    /// A create-only write found the key taken.
    #[error("object `{key}` exists already in {store}")]
    Exists {
        /// The store, as it describes itself.
        store: String,
        /// The key that is taken.
        key: String,
    },

    /// Another process holds a lock on the repository that this
    /// operation cannot share (a prune or gc holds it alone; backups,
    /// restores and verifies share it among themselves).
    #[error("the repository {store} is locked: {holder}{more}")]
    Locked {
        /// The store, as it describes itself.
        store: String,
        /// The first conflicting lock, described.
        holder: String,
        /// How many more conflict, if any.
        more: String,
    },

    /// This process's own lock could not be kept (refreshed in time, or
    /// someone removed it): the operation stops before changing anything
    /// more, since others may now take the repository.
    #[error("lost the lock on {store}: {problem}")]
    LockLost {
        /// The store, as it describes itself.
        store: String,
        /// What happened.
        problem: String,
    },

    /// A store operation failed.
    #[error("{operation} of `{key}` in {store} failed: {source}")]
    Store {
        /// The store, as it describes itself.
        store: String,
        /// `put`, `get`, `head`, `list` or `delete`.
        operation: &'static str,
        /// The object key (or prefix, for `list`).
        key: String,
        /// What the backend reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An object key that no store accepts (empty, absolute, `..`, ...).
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A repository location that cannot be used (`s3://` without a
    /// bucket, say).
    #[error("`{location}` is not a repository location: {problem}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong, with an example of what works.
        problem: String,
    },

    /// There is no repository at the location: no format record and no
    /// backups. Create one first (a typo in a location would otherwise
    /// start a new, empty repository, or list "no backups").
    #[error("there is no Shipshape repository in {location}; create one there first")]
    RepositoryMissing {
        /// The store, as [`Store::describe`](crate::Store::describe) says.
        location: String,
    },

    /// A repository exists already where one was to be created.
    #[error("{location} is a Shipshape repository already (created {created})")]
    RepositoryExists {
        /// The store, as [`Store::describe`](crate::Store::describe) says.
        location: String,
        /// When it was created.
        created: chrono::DateTime<chrono::Utc>,
    },

    /// No backup with this id (or no backup at all for `latest`).
    #[error("backup `{id}` not found in {store}{hint}")]
    BackupNotFound {
        /// The requested id, or `latest`.
        id: String,
        /// The store searched.
        store: String,
        /// Extra advice, e.g. that a data object without a manifest exists.
        hint: String,
    },

    /// A manifest could not be parsed or is inconsistent.
    #[error("manifest `{key}` is invalid: {reason}")]
    InvalidManifest {
        /// The manifest's object key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Some manifests cannot be read, so an operation that deletes cannot
    /// tell what they protect and refuses to run.
    #[error(
        "{count} manifest(s) cannot be read, so {operation} cannot tell what they protect \
         (first: {first}); fix or remove them first"
    )]
    UnreadableManifests {
        /// `prune` or `gc`.
        operation: &'static str,
        /// How many cannot be read.
        count: usize,
        /// The first one's error.
        first: Box<Error>,
    },

    /// A backup's stored data failed an integrity check: it was modified,
    /// truncated or does not match its manifest. Nothing wrong was restored
    /// silently; see the message for what may have been written.
    #[error("backup `{id}` is damaged: {problem}")]
    Corrupt {
        /// The backup id.
        id: String,
        /// What check failed.
        problem: String,
    },

    /// An archive entry, or a path an incremental layer deletes, would
    /// reach outside the restore target. Backups made by this tool never
    /// hold one: the archive was made elsewhere, or altered.
    #[error(
        "entry `{entry}` would reach outside the target: {reason}; nothing was written for it \
         and the restore stopped (the archive was not made by this tool, or was altered)"
    )]
    OutsideTarget {
        /// The entry's name in the archive.
        entry: String,
        /// Why.
        reason: &'static str,
    },

    /// A path asked of a directory backup is not in it.
    #[error("`{path}` is not in backup `{id}`")]
    NotInBackup {
        /// The backup id.
        id: String,
        /// The path asked for, as `ls` names it.
        path: String,
    },

    /// The backup is of another kind than the operation needs (a file
    /// backup restored into a database, a database drill of a globals
    /// dump).
    #[error("backup `{id}` {problem}")]
    WrongKind {
        /// The backup id.
        id: String,
        /// What it is and what to do instead.
        problem: String,
    },

    /// None of the given identities can decrypt the backup.
    #[error(
        "backup `{id}` cannot be decrypted with the given identity or passphrase \
         (it was encrypted to {encrypted_to})"
    )]
    WrongKey {
        /// The backup id.
        id: String,
        /// The recipients' public keys, or "a passphrase".
        encrypted_to: String,
    },

    /// A key, identity or recipients file is unusable.
    #[error("{}: {problem}", path.display())]
    Key {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },

    /// A key specification that cannot encrypt or decrypt: nothing given,
    /// or a passphrase together with public keys.
    #[error("{problem}")]
    Keys {
        /// What is missing or conflicting.
        problem: String,
    },

    /// A secret (passphrase, password, webhook URL) could not be read from
    /// where it is said to be.
    #[error(transparent)]
    Secret(#[from] settings::SecretError),

    /// A recipient string is not a valid age public key.
    #[error("invalid recipient `{recipient}`: {reason}")]
    InvalidRecipient {
        /// The rejected text (a public key, never a secret).
        recipient: String,
        /// Why it was rejected.
        reason: String,
    },

    /// An exclude pattern or exclude file that cannot be used.
    #[error("exclude `{pattern}`: {problem}")]
    Exclude {
        /// The pattern or the file as given.
        pattern: String,
        /// What is wrong.
        problem: String,
    },

    /// A source that cannot be read as written (an unknown kind, a
    /// password in a URL, options of another kind of source).
    #[error("source `{source_spec}`: {problem}")]
    InvalidSource {
        /// The source as written (never a secret).
        source_spec: String,
        /// What is wrong and an example of what works.
        problem: String,
    },

    /// Reading the backup source failed.
    #[error("reading {what} failed: {source}")]
    Source {
        /// The source, e.g. a path or "standard input".
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The source command could not be run or exited unsuccessfully.
    #[error("command `{command}` {status}{stderr}")]
    Command {
        /// The program name.
        command: String,
        /// How it ended, e.g. "exited with status 2".
        status: String,
        /// The tail of its standard error, prefixed for display.
        stderr: String,
    },

    /// A directory backup's file index (kept on the backup host for
    /// incrementals) is missing, damaged or cannot be written.
    #[error("file index {}: {problem}", path.display())]
    Index {
        /// The index file or directory.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },

    /// An incremental backup cannot be made or restored as asked.
    #[error("incremental backup: {problem}")]
    Incremental {
        /// What is wrong and what to do.
        problem: String,
    },

    /// The restore target cannot be used.
    #[error("restore target {}: {problem}", path.display())]
    Target {
        /// The target path.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },

    /// The restore target already holds data, and the restore was not
    /// asked to replace it.
    #[error(
        "restore target {target} {holds}; restore into a new or empty one, or restore with force to replace it"
    )]
    TargetNotEmpty {
        /// The path, database URL (without password) or volume.
        target: String,
        /// What is there, e.g. "is not empty" or "already exists".
        holds: String,
    },

    /// Writing the restored data failed.
    #[error("writing restored data to {} failed: {source}", path.display())]
    Write {
        /// Where the data was going.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL server refused, failed or could not be reached, its
    /// URL is unusable, or its client tools are missing or too old.
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] pg::Error),

    /// The Docker Engine could not do what was asked.
    #[error("Docker Engine: {operation}: {problem}")]
    Docker {
        /// What was asked, e.g. "create the helper container".
        operation: String,
        /// What the engine said, and what to do.
        problem: String,
    },

    /// The Docker volume does not exist.
    #[error("Docker volume `{volume}` not found; `docker volume ls` lists them")]
    VolumeNotFound {
        /// The volume's name.
        volume: String,
    },

    /// An option is out of range or does not fit the others.
    #[error("{option}: {problem}")]
    InvalidOption {
        /// The option, as the library calls it (e.g. `zstd level`).
        option: &'static str,
        /// What is wrong and what is accepted.
        problem: String,
    },

    /// This build leaves out what is needed.
    #[error("{what}: this build has no {feature} support (the `{feature}` feature of backup-core)")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// The cargo feature that adds it.
        feature: &'static str,
    },

    /// Work that needs a Tokio runtime was started outside one.
    #[error("{what} must run inside a Tokio runtime")]
    NoRuntime {
        /// What needed it.
        what: &'static str,
    },

    /// The config file is wrong; the message names the file and line.
    #[error("{origin}{}: {problem}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Config {
        /// The file (or what the text came from).
        origin: String,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong and what to do.
        problem: String,
    },

    /// The config has no job of this name.
    #[error("no job `{job}` in the config (its jobs: {})", if jobs.is_empty() { "none".to_owned() } else { jobs.join(", ") })]
    JobNotFound {
        /// The name asked for.
        job: String,
        /// The jobs there are.
        jobs: Vec<String>,
    },

    /// A job's hook command failed, so the run failed (before-hooks) or
    /// got a warning (after-hooks).
    #[error("{when}-hook `{command}` {problem}")]
    Hook {
        /// `before` or `after`.
        when: &'static str,
        /// The command.
        command: String,
        /// How it failed.
        problem: String,
    },

    /// The backup succeeded but applying the retention policy after it
    /// failed.
    #[error("backup {id} succeeded, but applying the retention policy failed: {source}")]
    Retention {
        /// The new backup.
        id: String,
        /// Why the policy could not be applied.
        #[source]
        source: Box<Error>,
    },

    /// A WAL file is archived already with other content.
    #[error("WAL file {name}: {problem}")]
    WalConflict {
        /// The file's name.
        name: String,
        /// What differs, and why that happens.
        problem: String,
    },

    /// A base backup's WAL did not reach the repository.
    #[error(
        "the base backup's WAL segment {name} was not archived into this repository within \
         {waited} s; the server's archive_command must push into the same repository \
         (`backupctl wal-push --repo ... %p`)"
    )]
    BaseWalMissing {
        /// The segment waited for.
        name: String,
        /// Seconds waited.
        waited: u64,
    },

    /// A segment is missing from the archive between a base backup and
    /// newer WAL: recovery cannot pass it.
    #[error(
        "WAL segment {name} is missing from the archive{}: recovery cannot pass it \
         (`backupctl wal verify` lists the gaps)",
        if *count > 1 { format!(" ({count} missing in all)") } else { String::new() }
    )]
    WalGap {
        /// The first missing segment.
        name: String,
        /// How many are missing.
        count: u64,
    },

    /// Recovery did not reach its target.
    #[error("recovery failed: {problem}")]
    Recovery {
        /// What happened, with the server's last words.
        problem: String,
    },

    /// A WAL file is not in the repository.
    #[error("WAL file {name} is not in the repository")]
    WalMissing {
        /// The file's name.
        name: String,
    },

    /// Encryption could not be set up.
    #[error("encryption failed: {0}")]
    Encrypt(String),

    /// A pipeline stage stopped because another stage failed first; the
    /// first failure is reported instead of this whenever it is known.
    #[error("the backup pipeline was interrupted: {0}")]
    Interrupted(String),
}

impl Error {
    /// True for a missing object or backup.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::BackupNotFound { .. } | Error::WalMissing { .. }
        )
    }

    pub(crate) fn exists(store: String, key: &str) -> Error {
        Error::Exists {
            store,
            key: key.to_owned(),
        }
    }

    pub(crate) fn store(
        store: impl Into<String>,
        operation: &'static str,
        key: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Store {
            store: store.into(),
            operation,
            key: key.into(),
            source: source.into(),
        }
    }
}

/// A delete whose object is already gone (removed by a concurrent gc or
/// prune) reached its goal: not an error.
pub(crate) fn gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Reading the source at `path` failed.
pub(crate) fn source_err(path: &Path, source: io::Error) -> Error {
    Error::Source {
        what: path.display().to_string(),
        source,
    }
}

// ---- errors through std::io ----------------------------------------------

/// Wraps a crate error to travel through `std::io` traits.
pub(crate) fn wrap(e: Error) -> io::Error {
    io::Error::other(e)
}

/// Recovers a crate error that travelled through `std::io`; a plain I/O
/// error (from a codec or the OS) is handed back as it is.
pub(crate) fn recover(e: io::Error) -> std::result::Result<Error, io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return Err(e);
    }
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(err)) => Ok(*err),
        _ => Ok(Error::Interrupted("pipeline error".into())),
    }
}

/// Like [`recover`], describing a plain I/O error from inside the pipeline.
pub(crate) fn unwrap_io(e: io::Error) -> Error {
    recover(e).unwrap_or_else(|e| Error::Interrupted(e.to_string()))
}
