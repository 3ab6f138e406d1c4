//! The manifest: a small JSON document describing one complete backup.
//!
//! A manifest is written only after its data object is completely stored,
//! so a data object without a manifest is by definition an incomplete backup
//! and is never listed or restored. Manifests are stored unencrypted (they
//! are needed to find and check backups before any key is at hand); they hold
//! public keys, sizes and hashes, never secrets. Note that the SHA-256 of the
//! plaintext lets someone who can read the store confirm a guess of a
//! backup's exact content.
//!
//! ```
//! # use backup_core::Manifest;
//! let json = r#"{"format":1,"id":"20261122T030000Z-0a1b2c3d","name":"etc",
//!   "source":{"kind":"directory","path":"/etc","entries":3},
//!   "started_at":"2026-11-22T03:00:00Z","finished_at":"2026-11-22T03:00:01Z",
//!   "payload":"tar","object":"data/20261122T030000Z-0a1b2c3d.tar.zst.age",
//!   "sizes":{"raw":10240,"compressed":300,"stored":520},
//!   "sha256":{"plaintext":"00000000000000000000000000000000000000000000000000000000000000aa",
//!             "stored":"00000000000000000000000000000000000000000000000000000000000000bb"},
//!   "compression":{"algorithm":"zstd","level":3},
//!   "encryption":{"algorithm":"age","recipients":[],"passphrase":true},
//!   "tool":{"name":"shipshape","version":"0.1.0"}}"#;
//! let manifest = Manifest::from_json(json.as_bytes()).unwrap();
//! assert_eq!(manifest.name, "etc");
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::validate_key;

/// The manifest format this version writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// Where manifests live in a repository.
pub const MANIFEST_PREFIX: &str = "manifests/";
/// Where data objects live in a repository.
pub const DATA_PREFIX: &str = "data/";

/// A backup's id: its UTC start time and a random suffix, e.g.
/// `20261122T030000Z-0a1b2c3d`. Ids sort chronologically.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A new id for a backup starting at `at`.
    pub fn generate(at: DateTime<Utc>) -> Self {
        BackupId(format!(
            "{}-{:08x}",
            at.format("%Y%m%dT%H%M%SZ"),
            rand::random::<u32>()
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of this backup's manifest.
    pub fn manifest_key(&self) -> String {
        format!("{MANIFEST_PREFIX}{}.json", self.0)
    }
}

impl FromStr for BackupId {
    type Err = String;

    /// Accepts 1-128 ASCII letters, digits, `-`, `_` and `.`, not starting
    /// with `.`; anything else could escape the repository layout.
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(BackupId(s.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a backup id (expected something like 20261122T030000Z-0a1b2c3d)",
                s.escape_debug()
            ))
        }
    }
}

impl TryFrom<String> for BackupId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest, serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256(pub [u8; 32]);

impl TryFrom<String> for Sha256 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out)
            .map_err(|_| format!("`{}` is not a SHA-256 (64 hex digits)", s.escape_debug()))?;
        Ok(Sha256(out))
    }
}

impl From<Sha256> for String {
    fn from(d: Sha256) -> String {
        hex::encode(d.0)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// Where a backup's index is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexObject {
    /// Its key in the store (`data/ID.index.zst.age`).
    pub object: String,
    /// Its stored size in bytes.
    pub stored: u64,
    /// The SHA-256 of the stored object.
    pub sha256: Sha256,
}

/// A position in the write-ahead log, written `X/Y` as PostgreSQL does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Lsn(pub u64);

impl Lsn {
    /// The number of the segment holding this position.
    pub fn segment(self, segment_size: u64) -> u64 {
        self.0 / segment_size.max(1)
    }
}

impl FromStr for Lsn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a WAL position (X/Y, hexadecimal)");
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl TryFrom<String> for Lsn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Lsn> for String {
    fn from(l: Lsn) -> String {
        l.to_string()
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// What was backed up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceInfo {
    /// A single file, stored as its raw bytes.
    File {
        /// The file's path (lossy UTF-8).
        path: String,
    },
    /// A directory tree, stored as a tar archive; or several files and
    /// directories, named in the archive relative to their deepest common
    /// directory.
    Directory {
        /// The directory's path (lossy UTF-8); for several paths, their
        /// deepest common directory.
        path: String,
        /// Number of archive entries (files, directories, links, ...).
        entries: u64,
        /// For several paths: each relative to `path` (lossy UTF-8).
        /// Empty: the whole directory.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        paths: Vec<String>,
    },
    /// Standard input, stored as raw bytes.
    Stdin,
    /// A byte stream handed over by an embedding program, stored raw.
    Stream {
        /// What the program called it.
        description: String,
    },
    /// An existing age-encrypted zstd file brought into the repository.
    Imported {
        /// The file's path (lossy UTF-8).
        path: String,
        /// Archive entries, when it holds a tar stream.
        entries: Option<u64>,
    },
    /// A command's standard output, stored as raw bytes.
    Command {
        /// The program run. Its arguments are not recorded: they may hold
        /// credentials, and manifests are not encrypted.
        program: String,
    },
    /// A Docker volume, read through the Engine API: the engine's tar
    /// archive of it, entries under `volume/`.
    DockerVolume {
        /// The volume's name.
        volume: String,
    },
    /// A PostgreSQL dump: a custom-format archive (`pg_restore` reads it)
    /// of one database, or the SQL script of the cluster's roles and
    /// tablespaces.
    Postgres(PostgresInfo),
    /// A PostgreSQL physical base backup: the tar of the data directory
    /// that `pg_basebackup --format=tar` writes (its `backup_label` first,
    /// its `backup_manifest` last); the WAL that makes it consistent is in
    /// the repository's WAL archive.
    PostgresBase(PgBaseInfo),
}

/// What a physical base backup is and which WAL it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBaseInfo {
    /// `HOST:PORT` of the server.
    pub server: String,
    /// The user that took it.
    pub user: String,
    /// The server's version.
    pub server_version: String,
    /// The tool that took it, e.g. `pg_basebackup 15.18`.
    pub tool: String,
    /// The cluster's system identifier (as text: it does not fit a JSON
    /// number exactly).
    pub system_identifier: String,
    /// The WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// The timeline it started on.
    pub timeline: u32,
    /// Where its WAL starts: recovery begins here.
    pub start_lsn: Lsn,
    /// Where its WAL ends: the earliest point it can be recovered to.
    pub stop_lsn: Lsn,
    /// The timeline it ended on.
    pub stop_timeline: u32,
}

/// What a PostgreSQL backup holds and what it must restore to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresInfo {
    /// A database or the cluster's globals.
    pub dump: PgDump,
    /// The database dumped (for globals: the one connected to).
    pub database: String,
    /// `HOST:PORT` of the server.
    pub server: String,
    /// The user that dumped it.
    pub user: String,
    /// The server's version, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    pub server_version: String,
    /// The tool that wrote the dump, e.g. `pg_dump 15.18`.
    pub tool: String,
    /// Whether our connection to the server was encrypted.
    pub tls: bool,
    /// Extensions installed in the database, which the restore target
    /// must be able to create.
    #[serde(default)]
    pub extensions: Vec<PgExtension>,
    /// How the tables' rows were counted.
    pub row_counts: RowCounts,
    /// Every user table whose data was dumped, with its row count in the
    /// dump's snapshot.
    #[serde(default)]
    pub tables: Vec<PgTable>,
}

/// What a PostgreSQL backup dumped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgDump {
    /// One database (`pg_dump --format=custom`).
    Database,
    /// Roles and tablespaces (`pg_dumpall --globals-only`, SQL).
    Globals,
}

/// An installed extension.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgExtension {
    /// Its name, e.g. `hstore`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// A table and its row count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgTable {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Rows: exact or estimated as [`PostgresInfo::row_counts`] says; none
    /// when not counted (or never analyzed, for estimates).
    pub rows: Option<u64>,
}

/// How a PostgreSQL backup counts each table's rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowCounts {
    /// `count(*)` of every table in the dump's snapshot: a restore drill
    /// can check them exactly. Reads every table once more.
    #[default]
    Exact,
    /// The planner's estimates (`pg_class.reltuples`): free, but only
    /// approximate, so a drill only checks that the tables exist.
    Estimate,
    /// No counts.
    Off,
}

impl FromStr for RowCounts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" => Ok(RowCounts::Exact),
            "estimate" => Ok(RowCounts::Estimate),
            "off" => Ok(RowCounts::Off),
            other => Err(format!(
                "`{}` is not one of exact, estimate, off",
                other.escape_debug()
            )),
        }
    }
}

impl fmt::Display for RowCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RowCounts::Exact => "exact",
            RowCounts::Estimate => "estimate",
            RowCounts::Off => "off",
        })
    }
}

/// How the plaintext is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// A tar archive (directory backups): `age -d | zstd -d | tar -x`.
    Tar,
    /// The source's bytes as they were read: `age -d | zstd -d > FILE`.
    Raw,
}

/// Sizes at each stage of the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// Plaintext bytes (the tar archive, or the raw stream).
    pub raw: u64,
    /// Bytes after zstd.
    pub compressed: u64,
    /// Bytes of the stored age file.
    pub stored: u64,
}

/// SHA-256 digests of the plaintext and of the stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    /// Of the plaintext stream.
    pub plaintext: Sha256,
    /// Of the stored (encrypted) object.
    pub stored: Sha256,
}

/// Compression settings used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// Always `zstd`.
    pub algorithm: String,
    /// The zstd level; 0 when unknown (imported backups).
    pub level: i32,
}

/// Encryption settings used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Always `age`.
    pub algorithm: String,
    /// Public keys the backup was encrypted to.
    pub recipients: Vec<String>,
    /// True when encrypted to a passphrase.
    pub passphrase: bool,
}

/// The program that wrote the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `shipshape`.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl Tool {
    /// This build of the library.
    pub fn current() -> Self {
        Tool {
            name: "shipshape".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Everything known about one complete backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// The backup's id.
    pub id: BackupId,
    /// The backup's name (a job name, or the source's file name).
    pub name: String,
    /// What was backed up.
    pub source: SourceInfo,
    /// When reading the source began.
    pub started_at: DateTime<Utc>,
    /// When the data object was complete.
    pub finished_at: DateTime<Utc>,
    /// How the plaintext is laid out.
    pub payload: Payload,
    /// The data object's key in the store.
    pub object: String,
    /// Sizes at each stage.
    pub sizes: Sizes,
    /// Digests of the plaintext and the stored object.
    pub sha256: Digests,
    /// Compression settings.
    pub compression: Compression,
    /// Encryption settings.
    pub encryption: Encryption,
    /// The program that wrote it.
    pub tool: Tool,
    /// Non-fatal problems met while reading the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// For an incremental backup, the backup it builds on: restoring it
    /// means restoring the parent's chain first, then applying this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<BackupId>,
    /// A directory backup's encrypted index of entries and frames, for
    /// `ls` and partial restores ([`crate::index`]); none for other
    /// backups and for those made before indexes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexObject>,
}

impl Manifest {
    /// Parses and checks a manifest. Errors describe the problem in one line.
    ///
    /// # Errors
    ///
    /// When the bytes are not a manifest of this format, or its fields
    /// contradict each other.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        m.check()?;
        Ok(m)
    }

    /// The manifest as pretty-printed JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Plain structs with string keys: serialization cannot fail.
        let mut out = serde_json::to_vec_pretty(self).expect("manifest serializes");
        out.push(b'\n');
        out
    }

    /// Checks what the type system cannot: version, object key, algorithms.
    fn check(&self) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT {
            return Err(format!(
                "manifest format {} is not supported by this version (which reads format \
                 {MANIFEST_FORMAT}); upgrade shipshape",
                self.format
            ));
        }
        validate_key(&self.object).map_err(|e| e.to_string())?;
        if !self.object.starts_with(DATA_PREFIX) {
            return Err(format!(
                "object `{}` is outside `{DATA_PREFIX}`",
                self.object
            ));
        }
        if self.compression.algorithm != "zstd" {
            return Err(format!(
                "unknown compression `{}`",
                self.compression.algorithm
            ));
        }
        if self.encryption.algorithm != "age" {
            return Err(format!(
                "unknown encryption `{}`",
                self.encryption.algorithm
            ));
        }
        if self.encryption.recipients.is_empty() && !self.encryption.passphrase {
            return Err("no recipients and no passphrase".into());
        }
        Ok(())
    }

    /// Who can decrypt this backup, for messages.
    pub fn encrypted_to(&self) -> String {
        let mut parts: Vec<String> = self.encryption.recipients.clone();
        if self.encryption.passphrase {
            parts.push("a passphrase".into());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_chronological_and_validated() {
        let a = BackupId::generate("2026-01-02T03:04:05Z".parse().expect("time"));
        assert!(a.as_str().starts_with("20260102T030405Z-"), "{a}");
        let b = BackupId::generate("2026-01-02T03:04:06Z".parse().expect("time"));
        assert!(a < b);
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn digest_hex_round_trip() {
        let d = Sha256([0xab; 32]);
        let s: String = d.into();
        assert_eq!(Sha256::try_from(s).expect("hex"), d);
        assert!(Sha256::try_from("zz".to_owned()).is_err());
    }
}
