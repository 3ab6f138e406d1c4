//! Applying a retention policy: deciding (see [`crate::retention`]) and
//! removing what it does not keep.

use std::collections::{HashMap, HashSet};

use chrono::TimeZone;

use crate::error::Result;
use crate::error::gone;
use crate::manifest::{BackupId, Manifest};
use crate::ops::list::list;
use crate::retention::{Policy, PrunePlan};
use crate::store::Store;

/// Plans `policy` (periods in `zone`) for the backups named `name` (or
/// all) and, if `apply`, removes what it does not keep.
pub(crate) async fn prune<Z: TimeZone>(
    store: &dyn Store,
    policy: &Policy,
    zone: &Z,
    name: Option<&str>,
    apply: bool,
) -> Result<PrunePlan> {
    let backups: Vec<Manifest> = list(store)
        .await?
        .complete("prune")?
        .into_iter()
        .filter(|m| name.is_none_or(|n| m.name == n))
        .collect();
    let mut plan = policy.plan(&backups, zone);
    if apply {
        let by_id: HashMap<&BackupId, &Manifest> = backups.iter().map(|m| (&m.id, m)).collect();
        for gone in plan.removals() {
            if let Some(m) = by_id.get(&gone.id) {
                remove(store, m).await?;
            }
        }
    }
    // WAL belongs to the cluster, not to one name: what is kept is every
    // base backup of any name that this prune leaves.
    let going: HashSet<&BackupId> = plan.removals().map(|d| &d.id).collect();
    let kept: Vec<Manifest> = list(store)
        .await?
        .complete("prune")?
        .into_iter()
        .filter(|m| !going.contains(&m.id))
        .collect();
    plan.wal = crate::wal::retain(store, &kept, apply).await?;
    Ok(plan)
}

/// Removes one backup: its manifest (so it is no longer listed), then its
/// data object and index.
pub(crate) async fn remove(store: &dyn Store, manifest: &Manifest) -> Result<()> {
    gone(store.delete(&manifest.id.manifest_key()).await)?;
    gone(store.delete(&manifest.object).await)?;
    if let Some(index) = &manifest.index {
        gone(store.delete(&index.object).await)?;
    }
    tracing::info!(id = %manifest.id, "backup removed");
    Ok(())
}
