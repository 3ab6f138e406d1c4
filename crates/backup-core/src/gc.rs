//! Garbage collection: what failed and killed backups leave behind.
//!
//! A backup writes its data object, then its manifest. A backup killed
//! before the data object completes leaves an unfinished write (an S3
//! multipart upload, a local temporary file); one killed between the two
//! writes leaves a data object that no manifest references. Neither is ever
//! listed as a backup, but both take space. [`Repository::gc`] finds them
//! and, when asked, removes them.
//!
//! Only leftovers older than a threshold are touched, so a backup running
//! at the same time (whose data object exists before its manifest) is safe
//! as long as it finishes within the threshold.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::manifest::DATA_PREFIX;
use crate::repo::Repository;
use crate::store::{Incomplete, ObjectMeta};

/// What [`Repository::gc`] found (and removed, when applied).
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

impl Repository {
    /// Finds unfinished writes and unreferenced data objects older than
    /// `older_than` and, if `apply`, removes them.
    ///
    /// Refuses to remove anything while any manifest is unreadable: the
    /// object it references cannot be known, and deleting a backup's data
    /// is not undoable.
    pub async fn gc(&self, older_than: Duration, apply: bool) -> Result<GcReport> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(older_than)
                .map_err(|_| Error::Config("gc threshold is too large".into()))?;
        let old = |t: Option<DateTime<Utc>>| t.is_none_or(|t| t <= cutoff);

        let listing = self.list().await?;
        if let Some(broken) = listing.broken.first() {
            return Err(Error::Config(format!(
                "{} manifest(s) cannot be read, so gc cannot tell which data objects are in use \
                 (first: {broken}); fix or remove them first",
                listing.broken.len()
            )));
        }
        let referenced: HashSet<&str> = listing.backups.iter().map(|m| m.object.as_str()).collect();

        let store = self.store();
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
                .filter(|o| !referenced.contains(o.key.as_str()) && old(o.modified))
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
}

/// A delete whose object is already gone (removed by a concurrent gc or
/// prune) reached its goal: not an error.
pub(crate) fn gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}
