//! Applying a retention policy: deciding (see [`crate::retention`]) and
//! removing what it does not keep.

use std::collections::{HashMap, HashSet};

use chrono::TimeZone;

use crate::error::Result;
use crate::error::gone;
use crate::lock::RepoLock;
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
    lock: &RepoLock,
) -> Result<PrunePlan> {
    let backups: Vec<Manifest> = list(store)
        .await?
        .complete("prune")?
        .into_iter()
        .filter(|m| name.is_none_or(|n| m.name == n))
        .collect();
    let mut plan = policy.plan(&backups, zone);
    // What stays: every backup of any name that this prune leaves. WAL
    // belongs to the cluster, not to one name, and an object two
    // manifests name stays while either does.
    let going: HashSet<&BackupId> = plan.removals().map(|d| &d.id).collect();
    let kept: Vec<Manifest> = list(store)
        .await?
        .complete("prune")?
        .into_iter()
        .filter(|m| !going.contains(&m.id))
        .collect();
    if apply {
        let needed = referenced(&kept);
        let by_id: HashMap<&BackupId, &Manifest> = backups.iter().map(|m| (&m.id, m)).collect();
        for gone in plan.removals() {
            if let Some(m) = by_id.get(&gone.id) {
                remove(store, m, &needed, lock).await?;
            }
        }
    }
    lock.check()?;
    plan.wal = crate::wal::retain(store, &kept, apply).await?;
    Ok(plan)
}

/// Removes one backup, keeping any object another backup names.
pub(crate) async fn remove_one(
    store: &dyn Store,
    manifest: &Manifest,
    lock: &RepoLock,
) -> Result<()> {
    let others: Vec<Manifest> = list(store)
        .await?
        .complete("remove")?
        .into_iter()
        .filter(|m| m.id != manifest.id)
        .collect();
    remove(store, manifest, &referenced(&others), lock).await
}

/// The data objects (and indexes) `manifests` name.
pub(crate) fn referenced(manifests: &[Manifest]) -> HashSet<&str> {
    manifests
        .iter()
        .flat_map(|m| {
            std::iter::once(m.object.as_str()).chain(m.index.as_ref().map(|i| i.object.as_str()))
        })
        .collect()
}

/// Removes one backup: its manifest (so it is no longer listed), then its
/// data object and index unless `needed` names them.
async fn remove(
    store: &dyn Store,
    manifest: &Manifest,
    needed: &HashSet<&str>,
    lock: &RepoLock,
) -> Result<()> {
    lock.check()?;
    gone(store.delete(&manifest.id.manifest_key()).await)?;
    let objects =
        std::iter::once(&manifest.object).chain(manifest.index.as_ref().map(|i| &i.object));
    for object in objects {
        if needed.contains(object.as_str()) {
            tracing::info!(id = %manifest.id, %object, "object kept: another backup names it");
            continue;
        }
        gone(store.delete(object).await)?;
    }
    tracing::info!(id = %manifest.id, "backup removed");
    Ok(())
}
