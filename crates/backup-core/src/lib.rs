//! Streaming, encrypted, verifiable backups.
//!
//! `backup-core` turns a source (a file, a directory, standard input, a
//! command's output, a PostgreSQL database, a Docker volume) into a
//! compressed, encrypted object in a [`Store`], and back. The stored object is a standard [age] file holding a standard zstd
//! stream (of a tar archive, for directories), so stock tools restore it
//! without this crate:
//!
//! ```text
//! age -d -i identity.txt data/ID.tar.zst.age | zstd -d | tar -x
//! ```
//!
//! Data flows through bounded, back-pressured stages on their own threads
//! (read -> zstd on all cores -> age -> store), so memory is fixed by
//! [`PipelineOptions`], never by the size of the input, and nothing is staged
//! on disk. A JSON [`Manifest`] written after the data records sizes and the
//! SHA-256 of the plaintext and of the stored object; restores and verifies
//! check both.
//!
//! Users name sources and keys in one shape on every surface — the
//! command line, the jobs config, the C ABI: a [`SourceSpec`] (`/srv/app`,
//! `-`, `postgres://...`, `docker-volume:NAME`, or a table) and a
//! [`KeySpec`] (recipients, recipients files, identity files, a
//! passphrase from a variable or a file). Everything a [`Repository`] can
//! do is in `repo.rs`, one method per operation.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use backup_core::{
//!     BackupOptions, BackupRef, Identities, MemoryStore, Recipients, Repository,
//!     RestoreOptions, RestoreTarget, Source, keys,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), backup_core::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("hello.txt"), "hello, world\n").unwrap();
//!
//! // The backup host needs only the public key.
//! let key = keys::generate();
//! let recipients = Recipients::x25519([key.to_public()]);
//!
//! let repo = Repository::new(Arc::new(MemoryStore::new()));
//! let manifest = repo
//!     .backup(Source::path(dir.path()), &BackupOptions::new(recipients).with_name("docs"))
//!     .await?;
//!
//! // Restoring needs the identity.
//! let latest = repo.find(&BackupRef::Latest { name: Some("docs".into()) }).await?;
//! assert_eq!(latest.id, manifest.id);
//! let scratch = tempfile::tempdir().unwrap();
//! let out = scratch.path().join("restored");
//! repo.restore(&latest, &Identities::from_key(key), RestoreTarget::Path(out.clone()),
//!              &RestoreOptions::default()).await?;
//! assert_eq!(std::fs::read_to_string(out.join("hello.txt")).unwrap(), "hello, world\n");
//! # Ok(())
//! # }
//! ```
//!
//! [age]: https://age-encryption.org/v1

#[cfg(feature = "docker")]
pub mod docker;
mod error;
pub mod incremental;
pub mod index;
#[cfg(feature = "jobs")]
pub mod jobs;
pub mod keys;
pub mod lock;
pub mod manifest;
mod ops;
mod pipeline;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod progress;
mod repo;
pub mod retention;
mod sink;
pub mod source;
pub mod stages;
pub mod store;
pub mod wal;

pub use error::{Error, Result};
pub use keys::{Identities, KeySpec, Recipients};
pub use manifest::{BackupId, Manifest};
pub use ops::backup::BackupOptions;
pub use ops::gc::GcReport;
pub use ops::history::{HISTORY_PREFIX, Outcome, Recovery, RunKind, RunRecord, check_job_name};
pub use ops::init::{FORMAT_KEY, RepositoryInfo};
pub use ops::list::{BackupRef, Listing};
pub use ops::ls::Listed;
pub use ops::restore::{PartRead, RestoreOptions, RestoreReport, RestoreTarget};
pub use ops::verify::VerifyReport;
pub use pipeline::PipelineOptions;
pub use progress::{NoProgress, Progress};
pub use repo::Repository;
pub use source::{Excludes, PostgresSpec, Source, SourceSpec, VolumeSpec};
pub use store::{Incomplete, LocalStore, MemoryStore, S3Location, Store, StoreExt};
#[cfg(feature = "s3")]
pub use store::{S3Options, S3Store};

/// Re-exported so callers can build keys without depending on `age`.
pub use age;
/// Re-exported: where secrets come from (environment variables, files).
pub use settings::Secret;
