//! Garbage collection: what failed and killed backups leave behind.
//!
//! A backup writes its data object, then its manifest. A backup killed
//! before the data object completes leaves an unfinished write (an S3
//! multipart upload, a local temporary file); one killed between the two
//! writes leaves a data object that no manifest references. Neither is ever
//! listed as a backup, but both take space. [`Repository::gc`](crate::Repository::gc) finds them
//! and, when asked, removes them.
//!
//! gc holds the repository alone (an exclusive lock), so no backup writes
//! beside it. Only leftovers older than a threshold are touched, and never
//! anything newer than the oldest live lock of another process.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result, gone};
use crate::lock::RepoLock;
use crate::manifest::DATA_PREFIX;
use crate::ops::list::list;
use crate::ops::prune::referenced;
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
    /// When another process's live lock was taken, if that is before the
    /// threshold: nothing newer was touched, whatever the threshold said.
    pub held_back_by: Option<DateTime<Utc>>,
}

/// Finds unfinished writes and unreferenced data objects older than
/// `older_than` and, if `apply`, removes them; refuses while a manifest is
/// unreadable (the object it references cannot be known, and deleting a
/// backup's data cannot be undone).
pub(crate) async fn gc(
    store: &dyn Store,
    older_than: Duration,
    apply: bool,
    lock: &RepoLock,
) -> Result<GcReport> {
    let asked = chrono::Duration::from_std(older_than)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| Error::InvalidOption {
            option: "gc age",
            problem: format!(
                "{} reaches back before the calendar starts",
                settings::duration::format(older_than)
            ),
        })?;
    let backups = list(store).await?.complete("gc")?;
    let referenced = referenced(&backups);
    let incomplete = store.incomplete("").await?;
    let unreferenced: Vec<_> = store
        .list(DATA_PREFIX)
        .await?
        .into_iter()
        .filter(|o| !referenced.contains(o.key.as_str()))
        // WAL stored by a push killed before its record was written.
        .chain(crate::wal::orphans(
            store.list(crate::wal::WAL_PREFIX).await?,
        ))
        .collect();
    // Checked after the listings: whatever a live lock's holder wrote since
    // it took its lock is left alone, whatever the threshold says.
    // (Under gc's own lock no other lock lives for long: a process that
    // meets it backs off. This covers the moment one has not yet.)
    let held_back_by = crate::lock::oldest_other(store, lock.key())
        .await?
        .filter(|t| *t < asked);
    let cutoff = held_back_by.map_or(asked, |t| t.min(asked));
    let old = |t: Option<DateTime<Utc>>| t.is_none_or(|t| t <= cutoff);
    // Locks, stream reports and run records are written without the
    // repository's lock (a lock is written before it is known to be held):
    // their unfinished writes are a few milliseconds old while they run,
    // so they go only after an hour, whatever the threshold.
    let an_hour_ago = Utc::now() - chrono::TimeDelta::hours(1);
    let abandoned = |u: &Incomplete| {
        let under_lock =
            u.key.starts_with(DATA_PREFIX) || u.key.starts_with(crate::wal::WAL_PREFIX);
        old(u.started) && (under_lock || u.started.is_none_or(|t| t <= an_hour_ago))
    };
    let mut report = GcReport {
        incomplete: incomplete.into_iter().filter(abandoned).collect(),
        unreferenced: unreferenced
            .into_iter()
            .filter(|o| old(o.modified))
            .collect(),
        applied: apply,
        unreferenced_bytes: 0,
        held_back_by,
    };
    report.unreferenced_bytes = report.unreferenced.iter().map(|o| o.size).sum();
    if apply {
        for upload in &report.incomplete {
            lock.check()?;
            gone(store.abort(upload).await)?;
        }
        for object in &report.unreferenced {
            lock.check()?;
            gone(store.delete(&object.key).await)?;
        }
    }
    Ok(report)
}
