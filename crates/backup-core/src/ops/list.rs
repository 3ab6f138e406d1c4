//! Listing backups and finding one: by id, the newest (of a name), and the
//! chain an incremental builds on.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::manifest::{BackupId, DATA_PREFIX, MANIFEST_PREFIX, Manifest};
use crate::store::{Store, StoreExt};

/// Manifests larger than this are refused as damaged.
const MAX_MANIFEST: u64 = 1 << 20;

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

impl Listing {
    /// The backups, unless a manifest is unreadable: then `operation`
    /// (which deletes, and must know what every backup protects) refuses.
    pub(crate) fn complete(mut self, operation: &'static str) -> Result<Vec<Manifest>> {
        if self.broken.is_empty() {
            return Ok(self.backups);
        }
        let count = self.broken.len();
        Err(Error::UnreadableManifests {
            operation,
            count,
            first: Box::new(self.broken.swap_remove(0)),
        })
    }
}

/// Every backup in `store`, oldest first.
pub(crate) async fn list(store: &dyn Store) -> Result<Listing> {
    let mut listing = Listing::default();
    for object in store.list(MANIFEST_PREFIX).await? {
        let Some(id) = object
            .key
            .strip_prefix(MANIFEST_PREFIX)
            .and_then(|k| k.strip_suffix(".json"))
            .and_then(|id| id.parse::<BackupId>().ok())
        else {
            continue;
        };
        match read_manifest(store, &id).await {
            Ok(m) => listing.backups.push(m),
            Err(e) => listing.broken.push(e),
        }
    }
    listing
        .backups
        .sort_by(|a, b| (a.finished_at, &a.id).cmp(&(b.finished_at, &b.id)));
    Ok(listing)
}

/// The manifest `which` names.
pub(crate) async fn find(store: &dyn Store, which: &BackupRef) -> Result<Manifest> {
    match which {
        BackupRef::Id(id) => read_manifest(store, id).await,
        BackupRef::Latest { name } => {
            let listing = list(store).await?;
            listing
                .backups
                .into_iter()
                .rev()
                .find(|m| name.as_ref().is_none_or(|n| &m.name == n))
                .ok_or_else(|| Error::BackupNotFound {
                    id: which.to_string(),
                    store: store.describe(),
                    hint: match listing.broken.len() {
                        0 => " (it holds no backups)".into(),
                        n => format!(" ({n} manifests could not be read)"),
                    },
                })
        }
    }
}

/// Reads and checks one manifest.
pub(crate) async fn read_manifest(store: &dyn Store, id: &BackupId) -> Result<Manifest> {
    let key = id.manifest_key();
    let bytes = match store.get_bytes(&key, MAX_MANIFEST).await {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Err(not_found(store, id).await),
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

/// A not-found error that says when a data object without a manifest (an
/// interrupted backup) exists.
async fn not_found(store: &dyn Store, id: &BackupId) -> Error {
    let orphan = store
        .list(&format!("{DATA_PREFIX}{id}."))
        .await
        .is_ok_and(|found| !found.is_empty());
    Error::BackupNotFound {
        id: id.to_string(),
        store: store.describe(),
        hint: if orphan {
            ": its data object exists but it has no manifest, so the backup never \
             completed and cannot be trusted"
                .into()
        } else {
            " (list the repository to see its backups)".into()
        },
    }
}

/// The chain an incremental backup builds on, oldest (the full backup)
/// first, ending with `manifest`.
pub(crate) async fn chain(store: &dyn Store, manifest: &Manifest) -> Result<Vec<Manifest>> {
    let mut chain = vec![manifest.clone()];
    while let Some(parent) = chain.last().and_then(|m| m.parent.clone()) {
        if chain.iter().any(|m| m.id == parent) || chain.len() > 10_000 {
            return Err(Error::Corrupt {
                id: manifest.id.to_string(),
                problem: "its chain of parents loops".into(),
            });
        }
        let child = chain.last().map(|m| m.id.to_string()).unwrap_or_default();
        match read_manifest(store, &parent).await {
            Ok(m) => chain.push(m),
            Err(e) if e.is_not_found() => {
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
