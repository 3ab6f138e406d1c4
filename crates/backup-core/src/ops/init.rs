//! Creating a repository, and telling one from a mistyped location.
//!
//! A repository holds a small format record, [`FORMAT_KEY`], written by
//! [`init`]. Operations on a location where there is neither that record
//! nor any backup fail with [`Error::RepositoryMissing`] instead of
//! quietly creating a new, empty repository (a backup) or reporting "no
//! backups" (a listing) — both of which hide a typo. Repositories made
//! before the record existed are recognised by their manifests.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::MANIFEST_PREFIX;
use crate::store::{Store, StoreExt};

/// The key of the format record.
pub const FORMAT_KEY: &str = "shipshape-repository.json";

/// The value of the record's `format` field.
const FORMAT: &str = "shipshape-repository";
/// The layout version this build writes and reads.
const VERSION: u32 = 1;
/// Records larger than this are refused as damaged.
const MAX_RECORD: u64 = 64 << 10;

/// A repository's format record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RepositoryInfo {
    /// Always `shipshape-repository`.
    pub format: String,
    /// The layout version.
    pub version: u32,
    /// When the repository was created.
    pub created: DateTime<Utc>,
    /// The tool that created it, e.g. `shipshape 0.1.0`.
    pub tool: String,
}

/// Writes the format record, creating the repository. A location that
/// already has backups but no record (made before records existed) is
/// adopted.
pub(crate) async fn init(store: &dyn Store) -> Result<RepositoryInfo> {
    if let Some(info) = read(store).await? {
        return Err(Error::RepositoryExists {
            location: store.describe(),
            created: info.created,
        });
    }
    let info = RepositoryInfo {
        format: FORMAT.to_owned(),
        version: VERSION,
        created: Utc::now(),
        tool: format!("shipshape {}", env!("CARGO_PKG_VERSION")),
    };
    let mut json = serde_json::to_vec_pretty(&info).map_err(|e| Error::InvalidOption {
        option: "repository record",
        problem: e.to_string(),
    })?;
    json.push(b'\n');
    store.put_bytes(FORMAT_KEY, Bytes::from(json)).await?;
    Ok(info)
}

/// Succeeds when `store` holds a repository: its format record, or
/// (made before records existed) a manifest.
pub(crate) async fn check(store: &dyn Store) -> Result<()> {
    if read(store).await?.is_some() || !store.list(MANIFEST_PREFIX).await?.is_empty() {
        return Ok(());
    }
    Err(Error::RepositoryMissing {
        location: store.describe(),
    })
}

/// The format record, when there is one.
pub(crate) async fn read(store: &dyn Store) -> Result<Option<RepositoryInfo>> {
    let bytes = match store.get_bytes(FORMAT_KEY, MAX_RECORD).await {
        Ok(bytes) => bytes,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let damaged = |problem: String| Error::InvalidManifest {
        key: FORMAT_KEY.to_owned(),
        reason: problem,
    };
    let info: RepositoryInfo =
        serde_json::from_slice(&bytes).map_err(|e| damaged(format!("not a format record: {e}")))?;
    if info.format != FORMAT {
        return Err(damaged(format!(
            "format is `{}`, not `{FORMAT}`",
            info.format
        )));
    }
    if info.version > VERSION {
        return Err(damaged(format!(
            "layout version {} is newer than this build reads ({VERSION}); upgrade Shipshape",
            info.version
        )));
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn init_then_check_and_no_second_init() {
        let store = MemoryStore::new();
        assert!(matches!(
            check(&store).await,
            Err(Error::RepositoryMissing { .. })
        ));
        let info = init(&store).await.expect("init");
        assert_eq!(info.version, VERSION);
        check(&store).await.expect("a repository now");
        assert!(matches!(
            init(&store).await,
            Err(Error::RepositoryExists { .. })
        ));
    }

    #[tokio::test]
    async fn old_repositories_are_recognised_and_bad_records_refused() {
        let store = MemoryStore::new();
        store
            .put_bytes("manifests/x.json", Bytes::from_static(b"{}"))
            .await
            .expect("put");
        check(&store)
            .await
            .expect("a manifest makes it a repository");
        init(&store).await.expect("adopted");
        for bad in [
            &b"not json"[..],
            br#"{"format":"restic","version":1,"created":"2026-01-01T00:00:00Z","tool":"x"}"#,
            br#"{"format":"shipshape-repository","version":99,"created":"2026-01-01T00:00:00Z","tool":"x"}"#,
        ] {
            store
                .put_bytes(FORMAT_KEY, Bytes::copy_from_slice(bad))
                .await
                .expect("put");
            assert!(matches!(check(&store).await, Err(Error::InvalidManifest { .. })));
        }
    }
}
