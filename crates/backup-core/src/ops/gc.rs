//! Garbage collection: what failed and killed backups leave behind.
//!
//! A backup writes its data object, then its manifest. A backup killed
//! before the data object completes leaves an unfinished write (an S3
//! multipart upload, a local temporary file); one killed between the two
//! writes leaves a data object that no manifest references. Neither is ever
//! listed as a backup, but both take space. [`Repository::gc`](crate::Repository::gc) finds them
//! and, when asked, removes them.
//!
//! Only leftovers older than a threshold are touched, so a backup running
//! at the same time (whose data object exists before its manifest) is safe
//! as long as it finishes within the threshold.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result, gone};
use crate::manifest::DATA_PREFIX;
use crate::ops::list::list;
use crate::store::{Incomplete, ObjectMeta, Store};

/// What [`Repository::gc`](crate::Repository::gc) found (and removed, when applied).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Unfinished writes older than the threshold.
    pub incomplete: Vec<Incomplete>,
    /// Data objects older than the threshold that no manifest references.
    pub unreferenced: Vec<ObjectMeta>,
    /// Whether they were removed (`false` for a dry run).
    pub applied: bool,
    /// Bytes held by the unreferenced objects.
    pub unreferenced_bytes: u64,
}

/// Finds unfinished writes and unreferenced data objects older than
/// `older_than` and, if `apply`, removes them; refuses while a manifest is
/// unreadable (the object it references cannot be known, and deleting a
/// backup's data cannot be undone).
pub(crate) async fn gc(store: &dyn Store, older_than: Duration, apply: bool) -> Result<GcReport> {
    let cutoff = chrono::Duration::from_std(older_than)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| Error::InvalidOption {
            option: "gc age",
            problem: format!(
                "{} reaches back before the calendar starts",
                settings::duration::format(older_than)
            ),
        })?;
    let old = |t: Option<DateTime<Utc>>| t.is_none_or(|t| t <= cutoff);

    let backups = list(store).await?.complete("gc")?;
    let referenced: HashSet<&str> = backups
        .iter()
        .flat_map(|m| {
            std::iter::once(m.object.as_str()).chain(m.index.as_ref().map(|i| i.object.as_str()))
        })
        .collect();

    let mut report = GcReport {
        incomplete: store
            .incomplete("")
            .await?
            .into_iter()
            .filter(|u| old(u.started))
            .collect(),
        unreferenced: store
            .list(DATA_PREFIX)
            .await?
            .into_iter()
            .filter(|o| !referenced.contains(o.key.as_str()))
            // WAL stored by a push killed before its record was written.
            .chain(crate::wal::orphans(
                store.list(crate::wal::WAL_PREFIX).await?,
            ))
            .filter(|o| old(o.modified))
            .collect(),
        applied: apply,
        unreferenced_bytes: 0,
    };
    report.unreferenced_bytes = report.unreferenced.iter().map(|o| o.size).sum();
    if apply {
        for upload in &report.incomplete {
            gone(store.abort(upload).await)?;
        }
        for object in &report.unreferenced {
            gone(store.delete(&object.key).await)?;
        }
    }
    Ok(report)
}
