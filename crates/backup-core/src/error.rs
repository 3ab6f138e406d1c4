//! The crate's error type.
//!
//! Every variant names what failed and on what (a backup id, an object key,
//! a path) so a caller can branch on it and a person can act on it. No
//! variant ever carries key material or passphrases.

use std::io;
use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in backup-core.
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

    /// A key, identity or passphrase file is unusable.
    #[error("{path}: {problem}")]
    Key {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },

    /// A recipient string is not a valid age public key.
    #[error("invalid recipient `{recipient}`: {reason}")]
    InvalidRecipient {
        /// The rejected text (a public key, never a secret).
        recipient: String,
        /// Why it was rejected.
        reason: String,
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

    /// The restore target cannot be used.
    #[error("restore target {path}: {problem}")]
    Target {
        /// The target path.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },

    /// Writing the restored data failed.
    #[error("writing restored data to {path} failed: {source}")]
    Write {
        /// Where the data was going.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL server refused, failed or could not be reached, or its
    /// client tools are missing or too old.
    #[error("PostgreSQL {target}: {problem}")]
    Postgres {
        /// The database, as `postgres://USER@HOST:PORT/DB` (never with a
        /// password).
        target: String,
        /// What went wrong, with the server's own message.
        problem: String,
    },

    /// Options that cannot work together or are out of range.
    #[error("invalid configuration: {0}")]
    Config(String),

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
        matches!(self, Error::NotFound { .. } | Error::BackupNotFound { .. })
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
