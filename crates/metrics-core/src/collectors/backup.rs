//! Backup freshness from a backup-core repository: per job, when the last
//! successful backup finished, how large and how long it was, and how many
//! runs failed since; the RPO and RTO the last drill of a base backup
//! achieved; and how old the newest archived WAL is.
//!
//! Jobs run by `backupctl run`/`daemon` leave run records in the
//! repository; backups made any other way (`backupctl backup` from cron)
//! are counted by their manifests, under the backup's name. Each record or
//! manifest is read once and remembered, so a scrape lists the repository
//! but reads only what is new.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use backup_core::manifest::MANIFEST_PREFIX;
use backup_core::{BackupRef, Repository};
use backup_core::{HISTORY_PREFIX, Outcome, RunKind};
use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, OnceCell};

use crate::collector::{CollectError, Collector};
use crate::model::{Family, Unit};

/// Freshness of the backups in one repository.
#[derive(Debug)]
pub struct BackupCollector {
    name: String,
    label: String,
    location: String,
    repo: OnceCell<Repository>,
    seen: Mutex<Seen>,
}

/// What a run record or manifest says, reduced to what freshness needs.
#[derive(Debug, Clone)]
struct Run {
    job: String,
    from_history: bool,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    /// `None` for a run that counts neither way (skipped).
    success: Option<bool>,
    stored: Option<u64>,
    /// A drill of a base backup: what it achieved.
    recovery: Option<backup_core::Recovery>,
}

#[derive(Debug, Default)]
struct Seen {
    runs: HashMap<String, Option<Run>>,
    /// The newest archived WAL file and when it was archived.
    wal: Option<(backup_core::wal::WalName, DateTime<Utc>)>,
}

/// The freshness of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// The job (or backup name).
    pub job: String,
    /// When its last successful backup finished.
    pub last_success: Option<DateTime<Utc>>,
    /// That backup's stored size.
    pub size: Option<u64>,
    /// How long that run took, in seconds.
    pub duration: Option<f64>,
    /// Failed or aborted runs after it.
    pub failures_since: u64,
    /// The job's last drill of a base backup: its achieved RPO and RTO.
    pub last_drill: Option<backup_core::Recovery>,
}

impl BackupCollector {
    /// A collector for the repository at `location` (a directory, or
    /// `s3://bucket/prefix` with the `backup-s3` feature), its samples
    /// labelled `repo="{label}"`.
    pub fn new(label: impl Into<String>, location: impl Into<String>) -> Self {
        let label = label.into();
        BackupCollector {
            name: format!("backup:{label}"),
            label,
            location: location.into(),
            repo: OnceCell::new(),
            seen: Mutex::new(Seen::default()),
        }
    }

    fn fail(&self, e: backup_core::Error) -> CollectError {
        CollectError::new(format!("{}: {e}", self.location))
    }

    /// The repository, opened on first use.
    async fn repository(&self) -> Result<&Repository, CollectError> {
        self.repo
            .get_or_try_init(|| Repository::open(&self.location))
            .await
            .map_err(|e| self.fail(e))
    }

    /// Reads what is new in the repository and reports every job.
    ///
    /// # Errors
    ///
    /// When the repository cannot be opened or listed.
    pub async fn freshness(&self) -> Result<Vec<Freshness>, CollectError> {
        let fail = |e: backup_core::Error| self.fail(e);
        let repo = self.repository().await?;
        let mut keys: Vec<String> = Vec::new();
        for prefix in [HISTORY_PREFIX, MANIFEST_PREFIX] {
            keys.extend(
                repo.store()
                    .list(prefix)
                    .await
                    .map_err(fail)?
                    .into_iter()
                    .map(|o| o.key),
            );
        }
        let mut seen = self.seen.lock().await;
        let current: HashSet<&String> = keys.iter().collect();
        seen.runs.retain(|k, _| current.contains(k));
        for key in &keys {
            if seen.runs.contains_key(key) {
                continue;
            }
            let run = read_run(repo, key).await.map_err(fail)?;
            seen.runs.insert(key.clone(), run);
        }
        Ok(summarize(seen.runs.values().flatten()))
    }

    /// The WAL streamers' own reports: failures, the age of the last file
    /// each stored, and the age of its report (a streamer that stopped
    /// reporting is down).
    ///
    /// # Errors
    ///
    /// When the repository cannot be read.
    async fn streams(&self, now: DateTime<Utc>) -> Result<Vec<Family>, CollectError> {
        let repo = self.repository().await?;
        let reports = repo.wal_streams().await.map_err(|e| self.fail(e))?;
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let age = |t: DateTime<Utc>| (now - t).as_seconds_f64().max(0.0);
        let mut failures = Family::counter(
            "shipshape_wal_stream_failures",
            "Failed stores and receiver restarts of a WAL streamer since it started.",
        );
        let mut failing = Family::gauge(
            "shipshape_wal_stream_failing",
            "1 while a WAL streamer's last attempt failed.",
        );
        let mut stored = Family::gauge(
            "shipshape_wal_stream_last_stored_age",
            "Time since a WAL streamer last stored a file (a segment or the partial one).",
        )
        .with_unit(Unit::Seconds);
        let mut reported = Family::gauge(
            "shipshape_wal_stream_report_age",
            "Time since a WAL streamer last reported (every 10 s while it runs).",
        )
        .with_unit(Unit::Seconds);
        for r in &reports {
            let labels = [("repo", self.label.as_str()), ("slot", r.slot.as_str())];
            failures.push(&labels, r.failures as f64);
            failing.push(&labels, f64::from(u8::from(r.last_error.is_some())));
            if let Some(at) = r.last_stored_at {
                stored.push(&labels, age(at));
            }
            reported.push(&labels, age(r.updated_at));
        }
        Ok(vec![failures, failing, stored, reported])
    }

    /// The newest WAL file archived in the repository (by position, then
    /// timeline) and when; `None` when it holds no WAL. Only a newer file's
    /// record is read.
    ///
    /// # Errors
    ///
    /// When the repository cannot be listed or the record read.
    pub async fn newest_wal(&self) -> Result<Option<(String, DateTime<Utc>)>, CollectError> {
        let fail = |e: backup_core::Error| self.fail(e);
        let repo = self.repository().await?;
        let newest = repo
            .wal_list()
            .await
            .map_err(fail)?
            .into_iter()
            .filter(|n| n.kind() != backup_core::wal::WalKind::History)
            .max_by_key(|n| {
                (
                    n.as_str()[8..24].to_owned(),
                    n.timeline(),
                    n.as_str().to_owned(),
                )
            });
        let Some(newest) = newest else {
            return Ok(None);
        };
        let mut seen = self.seen.lock().await;
        if seen.wal.as_ref().is_none_or(|(n, _)| *n != newest) {
            let at = repo
                .wal_record(&newest)
                .await
                .map_err(fail)?
                .map(|r| r.pushed_at);
            match at {
                Some(at) => seen.wal = Some((newest, at)),
                None => return Ok(None),
            }
        }
        Ok(seen.wal.as_ref().map(|(n, at)| (n.to_string(), *at)))
    }
}

async fn read_run(repo: &Repository, key: &str) -> backup_core::Result<Option<Run>> {
    if key.starts_with(HISTORY_PREFIX) {
        return Ok(repo.run_record(key).await?.map(|r| Run {
            job: r.job,
            from_history: true,
            started: r.started_at,
            finished: r.finished_at,
            // Drills check backups; they are not backups.
            success: match (r.kind, r.outcome) {
                (RunKind::Drill, _) => None,
                (_, Outcome::Success) => Some(true),
                (_, Outcome::Failure | Outcome::Aborted) => Some(false),
                _ => None,
            },
            stored: r.sizes.map(|s| s.stored),
            recovery: r.recovery,
        }));
    }
    let id = key
        .strip_prefix(MANIFEST_PREFIX)
        .and_then(|k| k.strip_suffix(".json"))
        .and_then(|id| id.parse().ok());
    let Some(id) = id else {
        return Ok(None);
    };
    match repo.find(&BackupRef::Id(id)).await {
        Ok(m) => Ok(Some(Run {
            job: m.name,
            from_history: false,
            started: m.started_at,
            finished: m.finished_at,
            success: Some(true),
            stored: Some(m.sizes.stored),
            recovery: None,
        })),
        // A manifest being written or removed right now, or damaged:
        // `backupctl verify` reports it; freshness leaves it out.
        Err(e) => {
            tracing::debug!(key, "unreadable manifest: {e}");
            Ok(None)
        }
    }
}

/// Per job: run records where a job has them, otherwise manifests.
fn summarize<'a>(runs: impl Iterator<Item = &'a Run>) -> Vec<Freshness> {
    let mut by_job: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        by_job.entry(run.job.as_str()).or_default().push(run);
    }
    by_job
        .into_iter()
        .map(|(job, mut runs)| {
            if runs.iter().any(|r| r.from_history) {
                runs.retain(|r| r.from_history);
            }
            runs.sort_by_key(|r| (r.finished, r.started));
            let last = runs.iter().rposition(|r| r.success == Some(true));
            let after = last.map_or(0, |i| i + 1);
            let failures_since = runs[after..]
                .iter()
                .filter(|r| r.success == Some(false))
                .count() as u64;
            let last_drill = runs.iter().rev().find_map(|r| r.recovery);
            let last = last.map(|i| runs[i]);
            Freshness {
                job: job.to_owned(),
                last_success: last.map(|r| r.finished),
                size: last.and_then(|r| r.stored),
                duration: last.map(|r| (r.finished - r.started).as_seconds_f64()),
                failures_since,
                last_drill,
            }
        })
        .collect()
}

#[async_trait]
impl Collector for BackupCollector {
    fn name(&self) -> &str {
        &self.name
    }

    async fn collect(&self) -> Result<Vec<Family>, CollectError> {
        let jobs = self.freshness().await?;
        let now = Utc::now();
        let mut at = Family::gauge(
            "shipshape_backup_last_success_timestamp",
            "When the job's last successful backup finished (0: never).",
        )
        .with_unit(Unit::Seconds);
        let mut age = Family::gauge(
            "shipshape_backup_last_success_age",
            "Time since the job's last successful backup finished (+Inf: never).",
        )
        .with_unit(Unit::Seconds);
        let mut size = Family::gauge(
            "shipshape_backup_last_success_size",
            "Stored size of the job's last successful backup.",
        )
        .with_unit(Unit::Bytes);
        let mut took = Family::gauge(
            "shipshape_backup_last_success_duration",
            "How long the job's last successful run took.",
        )
        .with_unit(Unit::Seconds);
        let mut failures = Family::gauge(
            "shipshape_backup_failures_since_success",
            "Failed or aborted runs since the job's last successful one.",
        );
        for j in &jobs {
            let labels = [("repo", self.label.as_str()), ("job", j.job.as_str())];
            let ts = j
                .last_success
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
            at.push(&labels, ts);
            age.push(
                &labels,
                j.last_success
                    .map_or(f64::INFINITY, |t| (now - t).as_seconds_f64().max(0.0)),
            );
            if let Some(s) = j.size {
                size.push(&labels, s as f64);
            }
            if let Some(d) = j.duration {
                took.push(&labels, d);
            }
            failures.push(&labels, j.failures_since as f64);
        }
        let mut rpo = Family::gauge(
            "shipshape_backup_drill_rpo",
            "The job's last drill of a base backup: how old the newest archived WAL was.",
        )
        .with_unit(Unit::Seconds);
        let mut rto = Family::gauge(
            "shipshape_backup_drill_rto",
            "The job's last drill of a base backup: how long restoring and recovering took.",
        )
        .with_unit(Unit::Seconds);
        for j in &jobs {
            let labels = [("repo", self.label.as_str()), ("job", j.job.as_str())];
            if let Some(d) = j.last_drill {
                if let Some(s) = d.rpo_seconds {
                    rpo.push(&labels, s);
                }
                rto.push(&labels, d.rto_seconds);
            }
        }
        let mut out = vec![at, age, size, took, failures, rpo, rto];
        if let Some((name, archived)) = self.newest_wal().await? {
            let labels = [("repo", self.label.as_str())];
            let mut at = Family::gauge(
                "shipshape_wal_last_archived_timestamp",
                "When the newest WAL file in the repository was archived.",
            )
            .with_unit(Unit::Seconds);
            at.push(&labels, archived.timestamp_millis() as f64 / 1000.0);
            let mut age = Family::gauge(
                "shipshape_wal_last_archived_age",
                "Time since the newest WAL file in the repository was archived.",
            )
            .with_unit(Unit::Seconds);
            age.push(&labels, (now - archived).as_seconds_f64().max(0.0));
            tracing::debug!(wal = %name, "newest archived WAL");
            out.extend([at, age]);
        }
        out.extend(self.streams(now).await?);
        Ok(out)
    }
}
