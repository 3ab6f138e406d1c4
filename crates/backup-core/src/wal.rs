//! PostgreSQL's write-ahead log in a repository: the files
//! `archive_command` hands over, stored so that `restore_command` can have
//! them back, and the arithmetic that tells which of them a base backup
//! needs.
//!
//! Every file is stored through the same pipeline as a backup (zstd, then
//! age to the job's public keys: the database host needs no private key)
//! under `wal/TIMELINE/NAME.zst.age`. Beside it a small plaintext record,
//! `wal/TIMELINE/NAME.json`, holds its sizes and SHA-256 digests; it is
//! written only once the object is completely stored, so, as with
//! manifests, a file is archived exactly when its record exists. An upload
//! killed half way leaves no record, and PostgreSQL's retry stores the
//! file again.
//!
//! Pushing is idempotent: a file whose record is there already is compared
//! by its SHA-256 and accepted when it is the same, refused loudly when it
//! differs (two servers archiving into one place, or a restored server
//! that did not start a new timeline).
//!
//! ```
//! use backup_core::wal::{Lsn, WalName};
//!
//! let name = WalName::parse("000000010000000A000000FF").unwrap();
//! assert_eq!(name.timeline(), 1);
//! assert_eq!(name.segment(16 << 20), Some(0xA * 256 + 0xFF));
//! let lsn: Lsn = "A/FF000028".parse().unwrap();
//! assert_eq!(lsn.segment(16 << 20), 0xA * 256 + 0xFF);
//! assert_eq!(WalName::segment_name(1, lsn.segment(16 << 20), 16 << 20).as_str(),
//!            "000000010000000A000000FF");
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Error, Result};
use crate::keys::{Identities, Recipients};
pub use crate::manifest::Lsn;
use crate::manifest::{Compression, Digests, Encryption, PgBaseInfo, Sha256, Sizes, Tool};
use crate::pipeline::PipelineOptions;
use crate::pipeline::decode::{Expect, decode_stream};
use crate::pipeline::encode::{Reading, encode};
use crate::progress::NoProgress;
use crate::source::{Filter, Source};
use crate::store::{Store, StoreExt};

/// Where WAL lives in a repository.
pub const WAL_PREFIX: &str = "wal/";

/// The format of the records this version writes.
const RECORD_FORMAT: u32 = 1;

/// Records are small; anything larger is not one of ours.
const RECORD_LIMIT: u64 = 64 << 10;

/// What kind of file PostgreSQL archived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalKind {
    /// A complete segment, `TTTTTTTTXXXXXXXXYYYYYYYY`.
    Segment,
    /// The last, incomplete segment of a timeline that ended
    /// (`...YYYYYYYY.partial`), or one a streaming receiver was writing.
    Partial,
    /// A timeline's history, `TTTTTTTT.history`.
    History,
    /// A base backup's label, `...YYYYYYYY.XXXXXXXX.backup`.
    BackupLabel,
}

/// The name of a file PostgreSQL archives, checked: `%f` comes from the
/// server, and nothing but these four shapes is ever used as a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalName(String);

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

impl WalName {
    /// Checks a file name.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for anything but the four shapes.
    pub fn parse(name: &str) -> Result<WalName> {
        let ok = match name.split_once('.') {
            None => is_hex(name, 24),
            Some((stem, "partial")) => is_hex(stem, 24),
            Some((stem, "history")) => is_hex(stem, 8),
            Some((stem, rest)) => match rest.split_once('.') {
                Some((offset, "backup")) => is_hex(stem, 24) && is_hex(offset, 8),
                _ => false,
            },
        };
        if !ok {
            return Err(Error::InvalidOption {
                option: "WAL file",
                problem: format!(
                    "`{name}` is not the name of a WAL segment, a .partial or .history file \
                     or a backup label (as PostgreSQL's %f gives them)"
                ),
            });
        }
        Ok(WalName(name.to_owned()))
    }

    /// The name of segment number `segment` of `timeline`.
    pub fn segment_name(timeline: u32, segment: u64, segment_size: u64) -> WalName {
        let per_id = segments_per_id(segment_size);
        WalName(format!(
            "{timeline:08X}{:08X}{:08X}",
            segment / per_id,
            segment % per_id
        ))
    }

    /// The history file of `timeline`.
    pub fn history_name(timeline: u32) -> WalName {
        WalName(format!("{timeline:08X}.history"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What kind of file it names.
    pub fn kind(&self) -> WalKind {
        if self.0.ends_with(".partial") {
            WalKind::Partial
        } else if self.0.ends_with(".history") {
            WalKind::History
        } else if self.0.ends_with(".backup") {
            WalKind::BackupLabel
        } else {
            WalKind::Segment
        }
    }

    /// Its timeline (the first eight hex digits).
    pub fn timeline(&self) -> u32 {
        u32::from_str_radix(&self.0[..8], 16).unwrap_or(0)
    }

    /// The segment number it covers (not for history files).
    pub fn segment(&self, segment_size: u64) -> Option<u64> {
        if self.kind() == WalKind::History {
            return None;
        }
        let hi = u64::from_str_radix(&self.0[8..16], 16).ok()?;
        let lo = u64::from_str_radix(&self.0[16..24], 16).ok()?;
        Some(hi * segments_per_id(segment_size) + lo)
    }

    /// The key of the stored file.
    pub fn object_key(&self) -> String {
        format!("{WAL_PREFIX}{}/{}.zst.age", &self.0[..8], self.0)
    }

    /// The key of its record.
    pub fn record_key(&self) -> String {
        format!("{WAL_PREFIX}{}/{}.json", &self.0[..8], self.0)
    }

    /// The name a record key stands for, if it is one.
    pub fn from_record_key(key: &str) -> Option<WalName> {
        let rest = key.strip_prefix(WAL_PREFIX)?;
        let (dir, file) = rest.split_once('/')?;
        let name = WalName::parse(file.strip_suffix(".json")?).ok()?;
        (dir == &name.0[..8]).then_some(name)
    }
}

impl fmt::Display for WalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many segments one "xlogid" (the middle eight hex digits) holds.
fn segments_per_id(segment_size: u64) -> u64 {
    (0x1_0000_0000 / segment_size.max(1)).max(1)
}

/// One switch in a timeline's history: `timeline` ended at `end` (the
/// next timeline begins there).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    /// The ancestor timeline.
    pub timeline: u32,
    /// Where it ended.
    pub end: Lsn,
}

/// Parses a `.history` file: one `TLI<tab>LSN<tab>reason` line per
/// ancestor, oldest first; `#` comments and blank lines skipped.
///
/// # Errors
///
/// A line that is not `TIMELINE LSN [REASON]`.
pub fn parse_history(text: &str) -> std::result::Result<Vec<Switch>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (fields.next(), fields.next()) else {
            return Err(format!("line {}: expected TIMELINE LSN [REASON]", i + 1));
        };
        let timeline = tli
            .parse::<u32>()
            .map_err(|_| format!("line {}: `{tli}` is not a timeline", i + 1))?;
        let end = lsn.parse().map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(Switch { timeline, end });
    }
    Ok(out)
}

/// The record stored beside each archived file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRecord {
    /// Record format (1).
    pub format: u32,
    /// The file's name.
    pub name: String,
    /// What kind of file.
    pub kind: WalKind,
    /// When it was stored.
    pub pushed_at: DateTime<Utc>,
    /// Sizes of the file, compressed and stored.
    pub sizes: Sizes,
    /// Digests of the file and of the stored object.
    pub sha256: Digests,
    /// How it was compressed.
    pub compression: Compression,
    /// Who can decrypt it.
    pub encryption: Encryption,
    /// For history files: the ancestors it names, so that timelines can be
    /// followed without a private key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Switch>,
    /// The program that stored it.
    pub tool: Tool,
}

impl WalRecord {
    fn from_json(key: &str, bytes: &[u8]) -> Result<WalRecord> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// What [`Repository::wal_push`](crate::Repository::wal_push) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// The file was stored.
    Stored(WalRecord),
    /// The same file (same SHA-256) was archived before; nothing was
    /// written.
    AlreadyArchived(WalRecord),
}

/// Stores the file at `path` (named as PostgreSQL names it) in `store`.
pub(crate) async fn push(
    store: &dyn Store,
    path: &Path,
    recipients: &Recipients,
    pipeline: &PipelineOptions,
) -> Result<Pushed> {
    push_with(store, path, recipients, pipeline, false).await
}

/// [`push`] of a `.partial` file that grows (a streamed segment): a newer
/// state replaces the stored one.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) async fn push_replacing(
    store: &dyn Store,
    path: &Path,
    recipients: &Recipients,
    pipeline: &PipelineOptions,
) -> Result<Pushed> {
    push_with(store, path, recipients, pipeline, true).await
}

/// Removes an archived file: its record first (it stops being archived),
/// then its object.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) async fn remove(store: &dyn Store, name: &WalName) -> Result<()> {
    crate::error::gone(store.delete(&name.record_key()).await)?;
    crate::error::gone(store.delete(&name.object_key()).await)
}

async fn push_with(
    store: &dyn Store,
    path: &Path,
    recipients: &Recipients,
    pipeline: &PipelineOptions,
    replace_partial: bool,
) -> Result<Pushed> {
    let file_name =
        path.file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidOption {
                option: "WAL file",
                problem: format!("{} has no file name", path.display()),
            })?;
    let name = WalName::parse(file_name)?;
    if let Some(record) = record(store, &name).await? {
        let (size, digest) = hash_file(path).await?;
        if digest == record.sha256.plaintext && size == record.sizes.raw {
            tracing::info!(%name, "archived before with the same content");
            return Ok(Pushed::AlreadyArchived(record));
        }
        if !(replace_partial && name.kind() == WalKind::Partial) {
            return Err(Error::WalConflict {
                name: name.to_string(),
                problem: format!(
                    "the repository holds a different {name} ({} bytes, SHA-256 {}) than {} \
                 ({size} bytes, SHA-256 {digest}); refusing to overwrite it. Two servers \
                 archiving into one place, or a restored server that did not start a new \
                 timeline, make this: give each server its own repository",
                    record.sizes.raw,
                    record.sha256.plaintext,
                    path.display()
                ),
            });
        }
        // The stored state stops being archived before it is replaced.
        crate::error::gone(store.delete(&name.record_key()).await)?;
    }
    let history = match name.kind() {
        WalKind::History => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|source| Error::Source {
                    what: path.display().to_string(),
                    source,
                })?;
            parse_history(&text).map_err(|problem| Error::InvalidSource {
                source_spec: path.display().to_string(),
                problem,
            })?
        }
        _ => Vec::new(),
    };
    let object = name.object_key();
    let encoded = encode(
        store,
        &object,
        Source::Path(path.to_path_buf()),
        recipients.clone(),
        pipeline,
        Reading {
            skip_unreadable: false,
            tracker: None,
            filter: Filter::none(),
            index: None,
        },
        Arc::new(NoProgress),
    )
    .await?;
    let record = WalRecord {
        format: RECORD_FORMAT,
        name: name.to_string(),
        kind: name.kind(),
        pushed_at: Utc::now(),
        sizes: encoded.measured.sizes,
        sha256: encoded.measured.digests,
        compression: Compression {
            algorithm: "zstd".into(),
            level: pipeline.level,
        },
        encryption: Encryption {
            algorithm: "age".into(),
            recipients: recipients.public_keys(),
            passphrase: recipients.is_passphrase(),
        },
        history,
        tool: Tool::current(),
    };
    // The record makes the file archived: written last, once the object is
    // completely stored.
    let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    store
        .put_bytes(&name.record_key(), Bytes::from(json))
        .await?;
    tracing::info!(%name, raw = record.sizes.raw, stored = record.sizes.stored, "archived");
    Ok(Pushed::Stored(record))
}

/// The record of `name`, if it is archived.
pub(crate) async fn record(store: &dyn Store, name: &WalName) -> Result<Option<WalRecord>> {
    let key = name.record_key();
    match store.get_bytes(&key, RECORD_LIMIT).await {
        Ok(bytes) => Ok(Some(WalRecord::from_json(&key, &bytes)?)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Size and SHA-256 of a file.
async fn hash_file(path: &Path) -> Result<(u64, Sha256)> {
    let path = path.to_path_buf();
    crate::pipeline::on_thread(move || {
        let mut file = std::fs::File::open(&path).map_err(|source| Error::Source {
            what: path.display().to_string(),
            source,
        })?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|source| Error::Source {
                what: path.display().to_string(),
                source,
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((size, Sha256(hasher.finalize().into())))
    })
    .await
}

/// Fetches the archived file `name` into `dest`: written beside it under a
/// temporary name and renamed once every check passed, so `dest` is
/// either complete and authentic or absent.
pub(crate) async fn fetch(
    store: &dyn Store,
    name: &WalName,
    dest: &Path,
    identities: &Identities,
) -> Result<WalRecord> {
    let (name, record) = match record(store, name).await? {
        Some(r) => (name.clone(), r),
        None => {
            // The end of a streamed archive: the segment being written
            // when the server stopped, stored as .partial (PostgreSQL
            // replays it up to where its records end).
            let partial = WalName(format!("{name}.partial"));
            match record(store, &partial).await? {
                Some(r) if name.kind() == WalKind::Segment => (partial, r),
                _ => {
                    return Err(Error::WalMissing {
                        name: name.to_string(),
                    });
                }
            }
        }
    };
    let name = &name;
    let stream = store.get(&name.object_key()).await.map_err(|e| match e {
        Error::NotFound { key, .. } => Error::Corrupt {
            id: name.to_string(),
            problem: format!("its record is there but its object `{key}` is missing"),
        },
        other => other,
    })?;
    let expect = Expect {
        id: name.to_string(),
        recipients: record.encryption.recipients.clone(),
        encrypted_to: record.encryption.recipients.join(", "),
        values: Some((record.sizes, record.sha256)),
    };
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".shipshape-wal-")
        .tempfile_in(&dir)
        .map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    let (file, temp_path) = temp.into_parts();
    let write_path = temp_path.to_path_buf();
    decode_stream(
        stream,
        expect,
        identities,
        Arc::new(NoProgress),
        move |input| {
            let mut file = file;
            std::io::copy(input, &mut file).map_err(|e| match e.kind() {
                std::io::ErrorKind::Other => crate::error::unwrap_io(e),
                _ => Error::Write {
                    path: write_path.clone(),
                    source: e,
                },
            })?;
            file.flush().map_err(|source| Error::Write {
                path: write_path,
                source,
            })
        },
    )
    .await?;
    temp_path.persist(dest).map_err(|e| Error::Write {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(record)
}

/// Every archived file (those with a record), sorted by name.
/// Where WAL streamers report how they are doing: `streams/SLOT.json`.
pub const STREAMS_PREFIX: &str = "streams/";

/// Stream reports larger than this are damaged.
const MAX_STREAM_REPORT: u64 = 64 << 10;

/// What a WAL streamer last reported about itself (every 10 s, and on
/// every change), for metricsd and `wal list`: a streamer in a daemon
/// elsewhere is seen through the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    /// The replication slot it streams through.
    pub slot: String,
    /// The host it runs on.
    pub host: String,
    /// When it wrote this report.
    pub updated_at: DateTime<Utc>,
    /// The last file it stored.
    pub last_stored: Option<String>,
    /// When it stored it.
    pub last_stored_at: Option<DateTime<Utc>>,
    /// Files stored since it started.
    pub stored: u64,
    /// Failed pushes and receiver restarts since it started.
    pub failures: u64,
    /// Its last error, while it is failing.
    pub last_error: Option<String>,
}

impl StreamReport {
    fn key(&self) -> String {
        let slot: String = self
            .slot
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{STREAMS_PREFIX}{slot}.json")
    }
}

/// Stores a streamer's report.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) async fn report_stream(store: &dyn Store, report: &StreamReport) -> Result<()> {
    let json = serde_json::to_vec_pretty(report).unwrap_or_default();
    store.put_bytes(&report.key(), Bytes::from(json)).await?;
    Ok(())
}

/// Every streamer's last report; damaged ones are skipped with a warning.
///
/// # Errors
///
/// The store's.
pub async fn stream_reports(store: &dyn Store) -> Result<Vec<StreamReport>> {
    let mut out = Vec::new();
    for object in store.list(STREAMS_PREFIX).await? {
        if object.size > MAX_STREAM_REPORT {
            tracing::warn!(key = %object.key, "stream report too large; skipped");
            continue;
        }
        let data = match store.get_bytes(&object.key, MAX_STREAM_REPORT).await {
            Ok(data) => data,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        match serde_json::from_slice(&data) {
            Ok(report) => out.push(report),
            Err(e) => tracing::warn!(key = %object.key, "unreadable stream report: {e}"),
        }
    }
    Ok(out)
}

pub(crate) async fn list(store: &dyn Store) -> Result<Vec<WalName>> {
    let mut names: Vec<WalName> = store
        .list(WAL_PREFIX)
        .await?
        .iter()
        .filter_map(|meta| WalName::from_record_key(&meta.key))
        .collect();
    names.sort();
    Ok(names)
}

/// The timelines a recovery follows from a base backup's timeline to the
/// newest timeline descending from it (`recovery_target_timeline =
/// 'latest'`): its ancestors with where each ended, then itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Ancestors of [`last`](Self::last), oldest first, with their ends.
    pub switches: Vec<Switch>,
    /// The timeline recovery ends on.
    pub last: u32,
}

impl Chain {
    /// The chain that starts at `from` and goes up to the highest
    /// timeline whose history (among `histories`: timeline, its switches)
    /// names `from`.
    pub fn latest_from(from: u32, histories: &[(u32, Vec<Switch>)]) -> Chain {
        let mut best = Chain {
            switches: Vec::new(),
            last: from,
        };
        for (timeline, switches) in histories {
            if *timeline > best.last && switches.iter().any(|s| s.timeline == from) {
                best = Chain {
                    switches: switches.clone(),
                    last: *timeline,
                };
            }
        }
        best
    }

    /// The timeline whose name a segment has along this chain: the segment
    /// holding a switch already belongs to the next timeline.
    pub fn timeline_of(&self, segment: u64, segment_size: u64) -> u32 {
        self.switches
            .iter()
            .find(|s| segment < s.end.segment(segment_size))
            .map_or(self.last, |s| s.timeline)
    }

    /// The name of segment `segment` along this chain.
    pub fn segment_name(&self, segment: u64, segment_size: u64) -> WalName {
        WalName::segment_name(
            self.timeline_of(segment, segment_size),
            segment,
            segment_size,
        )
    }
}

/// What the archive holds along a chain from a start segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The newest segment archived along the chain, if any.
    pub newest: Option<u64>,
    /// Segments between the start and the newest that are not archived
    /// (at most [`MAX_REPORTED`] named).
    pub missing: Vec<WalName>,
    /// How many are missing in all.
    pub missing_count: u64,
}

/// The most missing segments [`Coverage`] names.
pub const MAX_REPORTED: usize = 100;

/// Walks the chain from segment `start`: which archived segments (full
/// ones, from `archived`) it reaches and where it has holes.
pub fn coverage(
    chain: &Chain,
    archived: &std::collections::BTreeSet<WalName>,
    start: u64,
    segment_size: u64,
) -> Coverage {
    // A streamed archive ends with the segment being written, stored as
    // .partial: it counts for the newest, not for the holes.
    let on_chain = |name: &WalName| {
        matches!(name.kind(), WalKind::Segment | WalKind::Partial)
            && name.segment(segment_size).is_some_and(|n| {
                n >= start && chain.timeline_of(n, segment_size) == name.timeline()
            })
    };
    let newest = archived
        .iter()
        .filter(|n| on_chain(n))
        .filter_map(|n| n.segment(segment_size))
        .max();
    let mut missing = Vec::new();
    let mut missing_count = 0;
    if let Some(newest) = newest {
        for segment in start..newest {
            let name = chain.segment_name(segment, segment_size);
            if !archived.contains(&name) {
                missing_count += 1;
                if missing.len() < MAX_REPORTED {
                    missing.push(name);
                }
            }
        }
    }
    Coverage {
        newest,
        missing,
        missing_count,
    }
}

/// The history of every timeline archived (read from the records: no key
/// needed).
pub(crate) async fn histories(
    store: &dyn Store,
    names: &[WalName],
) -> Result<Vec<(u32, Vec<Switch>)>> {
    let mut out = Vec::new();
    for name in names.iter().filter(|n| n.kind() == WalKind::History) {
        if let Some(record) = record(store, name).await? {
            out.push((name.timeline(), record.history));
        }
    }
    Ok(out)
}

/// What `wal verify` found for one base backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BaseCoverage {
    /// The base backup.
    pub id: String,
    /// Its start timeline.
    pub timeline: u32,
    /// The timeline a recovery to `latest` ends on.
    pub latest_timeline: u32,
    /// The first segment it needs.
    pub first: String,
    /// The segment its end is in: it is restorable once this is archived.
    pub consistent_at: String,
    /// The newest segment archived along its chain.
    pub newest: Option<String>,
    /// When that was archived.
    pub newest_pushed_at: Option<DateTime<Utc>>,
    /// Segments missing between `first` and `newest` (at most
    /// [`MAX_REPORTED`]).
    pub missing: Vec<String>,
    /// How many are missing in all.
    pub missing_count: u64,
    /// Every segment from its start through its end and on to the newest
    /// is archived: it recovers to any point up to the newest.
    pub complete: bool,
}

impl BaseCoverage {
    /// True when every segment from its start through its end and on to
    /// the newest is archived.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

/// Walks the archive from every base backup in `bases`.
pub(crate) async fn verify(
    store: &dyn Store,
    bases: &[crate::manifest::Manifest],
) -> Result<Vec<BaseCoverage>> {
    let names = list(store).await?;
    let histories = histories(store, &names).await?;
    let archived: std::collections::BTreeSet<WalName> = names.into_iter().collect();
    let mut out = Vec::new();
    for m in bases {
        let crate::manifest::SourceInfo::PostgresBase(base) = &m.source else {
            continue;
        };
        let size = base.wal_segment_size;
        let chain = Chain::latest_from(base.timeline, &histories);
        let start = base.start_lsn.segment(size);
        let c = coverage(&chain, &archived, start, size);
        let newest = c.newest.map(|n| chain.segment_name(n, size));
        let newest_pushed_at = match &newest {
            Some(n) => record(store, n).await?.map(|r| r.pushed_at),
            None => None,
        };
        out.push(BaseCoverage {
            id: m.id.to_string(),
            timeline: base.timeline,
            latest_timeline: chain.last,
            first: chain.segment_name(start, size).to_string(),
            consistent_at: chain
                .segment_name(base.stop_lsn.segment(size), size)
                .to_string(),
            newest: newest.map(|n| n.to_string()),
            newest_pushed_at,
            missing: c.missing.iter().map(ToString::to_string).collect(),
            missing_count: c.missing_count,
            complete: c.missing_count == 0
                && c.newest.is_some_and(|n| n >= base.stop_lsn.segment(size)),
        });
    }
    Ok(out)
}

/// Removes (with `apply`; else only names) the archived WAL files that no
/// base backup in `kept` needs: a segment is needed when it is at or after
/// a kept base backup's start and on its timeline or one descending from
/// it. History files are always kept (they are tiny and tell the
/// timelines apart). With no base backup kept, nothing is removed: WAL
/// archived ahead of a first base backup is not judged.
pub(crate) async fn retain(
    store: &dyn Store,
    kept: &[crate::manifest::Manifest],
    apply: bool,
) -> Result<Vec<String>> {
    let bases: Vec<&PgBaseInfo> = kept
        .iter()
        .filter_map(|m| match &m.source {
            crate::manifest::SourceInfo::PostgresBase(b) => Some(b),
            _ => None,
        })
        .collect();
    if bases.is_empty() {
        return Ok(Vec::new());
    }
    let names = list(store).await?;
    let histories = histories(store, &names).await?;
    let descends = |timeline: u32, from: u32| {
        timeline == from
            || histories
                .iter()
                .any(|(t, switches)| *t == timeline && switches.iter().any(|s| s.timeline == from))
    };
    let mut removed = Vec::new();
    for name in names {
        if name.kind() == WalKind::History {
            continue;
        }
        let needed = bases.iter().any(|b| {
            name.segment(b.wal_segment_size)
                .is_some_and(|s| s >= b.start_lsn.segment(b.wal_segment_size))
                && descends(name.timeline(), b.timeline)
        });
        if needed {
            continue;
        }
        if apply {
            // The record first: the file stops being archived before its
            // object goes.
            crate::error::gone(store.delete(&name.record_key()).await)?;
            crate::error::gone(store.delete(&name.object_key()).await)?;
        }
        removed.push(name.to_string());
    }
    if apply && !removed.is_empty() {
        tracing::info!(
            files = removed.len(),
            "WAL no kept base backup needs removed"
        );
    }
    Ok(removed)
}

/// The stored WAL objects in `listing` (of [`WAL_PREFIX`]) without a
/// record: left by a push killed between storing the object and writing
/// its record, and never archived.
pub(crate) fn orphans(listing: Vec<crate::store::ObjectMeta>) -> Vec<crate::store::ObjectMeta> {
    let records: std::collections::HashSet<String> = listing
        .iter()
        .filter_map(|o| o.key.strip_suffix(".json").map(str::to_owned))
        .collect();
    listing
        .into_iter()
        .filter(|o| {
            o.key
                .strip_suffix(".zst.age")
                .is_some_and(|stem| !records.contains(stem))
        })
        .collect()
}

/// How long a base backup waits for its last WAL segment to be archived.
const BASE_WAL_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits until every segment from `base`'s start to its stop position is
/// archived: a base backup is listed only when it can be recovered.
pub(crate) async fn await_base_wal(store: &dyn Store, base: &PgBaseInfo) -> Result<()> {
    let size = base.wal_segment_size;
    let first = base.start_lsn.segment(size);
    let last = base.stop_lsn.segment(size);
    let started = std::time::Instant::now();
    for segment in first..=last {
        // Both ends are on one timeline but for a backup taken while a
        // standby was promoted: then the later ones are on the new one.
        let timeline = if segment == first {
            base.timeline
        } else {
            base.stop_timeline
        };
        let name = WalName::segment_name(timeline, segment, size);
        loop {
            match store.head(&name.record_key()).await {
                Ok(_) => break,
                Err(Error::NotFound { .. }) if started.elapsed() < BASE_WAL_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(Error::NotFound { .. }) => {
                    return Err(Error::BaseWalMissing {
                        name: name.to_string(),
                        waited: BASE_WAL_WAIT.as_secs(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000003.partial",
            "000000010000000000000002.00000028.backup",
        ] {
            assert_eq!(WalName::parse(ok).expect("test data").as_str(), ok);
        }
        for bad in [
            "",
            "../../etc/passwd",
            "00000001000000000000003",
            "000000010000000000000003.tmp",
            "0000000g0000000000000003",
            "000000010000000000000003/x",
            "00000002.history.x",
            "000000010000000000000002.0000028.backup",
            "RECOVERYXLOG",
        ] {
            assert!(WalName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let n = WalName::parse("000000020000000100000004").expect("test data");
        assert_eq!(
            n.object_key(),
            "wal/00000002/000000020000000100000004.zst.age"
        );
        assert_eq!(WalName::from_record_key(&n.record_key()), Some(n.clone()));
        assert_eq!(
            WalName::from_record_key("wal/00000001/000000020000000100000004.json"),
            None
        );
        assert_eq!(n.segment(16 << 20), Some(256 + 4));
        assert_eq!(n.segment(1 << 30), Some(4 + 4));
        assert_eq!(WalName::segment_name(2, 260, 16 << 20), n);
    }

    #[test]
    fn history_files_parse() {
        let text =
            "1\t0/3000108\tno recovery target specified\n\n2\t0/5000000\tat restore point \"x\"\n";
        let h = parse_history(text).expect("test data");
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[1],
            Switch {
                timeline: 2,
                end: Lsn(0x500_0000)
            }
        );
        assert!(parse_history("one 0/1").is_err());
    }

    #[test]
    fn chains_follow_the_newest_descendant() {
        const MB16: u64 = 16 << 20;
        let h2 = vec![Switch {
            timeline: 1,
            end: "0/5000100".parse().expect("test data"),
        }];
        let h3 = vec![
            h2[0],
            Switch {
                timeline: 2,
                end: "0/7000000".parse().expect("test data"),
            },
        ];
        let chain = Chain::latest_from(1, &[(2, h2.clone()), (3, h3)]);
        assert_eq!(chain.last, 3);
        assert_eq!(chain.timeline_of(4, MB16), 1);
        assert_eq!(chain.timeline_of(5, MB16), 2);
        assert_eq!(chain.timeline_of(6, MB16), 2);
        assert_eq!(chain.timeline_of(7, MB16), 3);
        // A base backup on timeline 2 does not descend from a sibling.
        let other = Chain::latest_from(
            2,
            &[
                (2, h2),
                (
                    4,
                    vec![Switch {
                        timeline: 1,
                        end: Lsn(1),
                    }],
                ),
            ],
        );
        assert_eq!(other.last, 2);

        let archived: std::collections::BTreeSet<WalName> = [
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005.partial",
            "000000020000000000000005",
            "000000030000000000000007",
            "000000030000000000000008",
        ]
        .iter()
        .map(|n| WalName::parse(n).expect("test data"))
        .collect();
        let c = coverage(&chain, &archived, 3, MB16);
        assert_eq!(c.newest, Some(8));
        assert_eq!(
            c.missing,
            vec![WalName::parse("000000020000000000000006").expect("test data")]
        );
        assert_eq!(c.missing_count, 1);
    }

    #[test]
    fn positions_print_as_postgres_does() {
        let l: Lsn = "1A/2B".parse().expect("test data");
        assert_eq!(l.to_string(), "1A/2B");
        assert!("12".parse::<Lsn>().is_err());
    }
}
