//! Verifying a backup without writing anything.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::manifest::{BackupId, Manifest, Payload, SourceInfo};
use crate::ops::restore::extract::check_tar;
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
}

/// Streams the stored object, decrypts and decompresses it, and checks
/// sizes, digests and (for tar payloads) the archive's entry count.
pub(crate) async fn verify(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport> {
    let payload = manifest.payload;
    let entries = decode(
        store,
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
