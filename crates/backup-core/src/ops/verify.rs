//! Verifying a backup without writing anything.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::manifest::{BackupId, Manifest, Payload, SourceInfo};
use crate::ops::list::chain;
use crate::ops::restore::extract::{EntryCheck, check_tar};
use crate::pipeline::decode::decode;
use crate::progress::Progress;
use crate::store::Store;

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
    /// Backups verified: 1, or for an incremental its whole chain.
    pub layers: usize,
}

/// Verifies a backup and, for an incremental, every backup of its chain
/// (oldest first): a layer is only as good as what it builds on.
pub(crate) async fn verify(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport> {
    let chain = chain(store, manifest).await?;
    let layers = chain.len();
    // A restore applies the layers in one target: a symbolic link made by
    // one layer is in the way of the next.
    let checks = Arc::new(Mutex::new(EntryCheck::default()));
    let mut last = None;
    for (i, link) in chain.iter().enumerate() {
        let checks = Arc::clone(&checks);
        last = Some(
            verify_one(
                store,
                link,
                identities,
                Arc::clone(&progress),
                checks,
                i > 0,
            )
            .await?,
        );
    }
    let report = last.ok_or_else(|| Error::Corrupt {
        id: manifest.id.to_string(),
        problem: "its chain is empty".into(),
    })?;
    Ok(VerifyReport { layers, ..report })
}

/// Streams the stored object, decrypts and decompresses it, and checks
/// sizes, digests and (for tar payloads) the archive's entries and count.
async fn verify_one(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    progress: Arc<dyn Progress>,
    checks: Arc<Mutex<EntryCheck>>,
    layer: bool,
) -> Result<VerifyReport> {
    let payload = manifest.payload;
    let entries = decode(
        store,
        manifest,
        identities,
        progress,
        move |input| match payload {
            Payload::Tar => {
                let mut checks = checks.lock().unwrap_or_else(|e| e.into_inner());
                check_tar(input, &mut checks, layer).map(Some)
            }
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
    if manifest.index.is_some() {
        check_index(store, manifest, identities, entries).await?;
    }
    Ok(VerifyReport {
        id: manifest.id.clone(),
        stored: manifest.sizes.stored,
        raw: manifest.sizes.raw,
        entries,
        layers: 1,
    })
}

/// Reads a backup's index through and checks it against the data: as many
/// entries as the archive (but an incremental's deletion list), and frames
/// that add up to the compressed stream.
async fn check_index(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    archive_entries: Option<u64>,
) -> Result<()> {
    let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tap = Arc::clone(&counted);
    let layout = crate::ops::ls::read_index(store, manifest, identities, move |_| {
        tap.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })
    .await?;
    let listed = counted.load(std::sync::atomic::Ordering::Relaxed);
    let damaged = |problem: String| Error::Corrupt {
        id: manifest.id.to_string(),
        problem: format!("its index does not match its data: {problem}"),
    };
    let deletions = u64::from(manifest.parent.is_some());
    if let Some(found) = archive_entries {
        if listed + deletions != found {
            return Err(damaged(format!(
                "{listed} entries listed, {found} in the archive"
            )));
        }
    }
    let compressed: u64 = layout.frames.iter().map(|&n| u64::from(n)).sum();
    if layout.end != manifest.sizes.raw || compressed != manifest.sizes.compressed {
        return Err(damaged(format!(
            "it maps {} plaintext bytes in {compressed} compressed ones; the backup has {} in {}",
            layout.end, manifest.sizes.raw, manifest.sizes.compressed
        )));
    }
    Ok(())
}
