//! The run history of jobs, kept in the repository next to the backups so that
//! `backupctl history` and the metrics exporter read the same truth from
//! any host: one small JSON object per run at
//! `history/JOB/STARTED-KIND-RANDOM.json` (one object per run, so two hosts
//! never overwrite each other's records, on S3 too).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::{BackupId, Sizes};
use crate::store::{Store, StoreExt};

/// Where run records live in a repository.
pub const HISTORY_PREFIX: &str = "history/";

/// Records larger than this are refused as damaged.
const MAX_RECORD: u64 = 64 << 10;

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A full backup.
    Full,
    /// An incremental backup (a full one when there is no usable parent).
    Incremental,
    /// A restore drill (or, for non-database jobs, a verify).
    Drill,
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
            RunKind::Drill => "drill",
        })
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did what it should.
    Success,
    /// It failed; [`RunRecord::error`] says why.
    Failure,
    /// It was due while the previous run of the job was still going, so it
    /// did not start.
    Skipped,
    /// The daemon shut down and stopped it part-way.
    Aborted,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Skipped => "skipped",
            Outcome::Aborted => "aborted",
        })
    }
}

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job.
    pub job: String,
    /// What ran.
    pub kind: RunKind,
    /// The scheduled time it ran for (none when started by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The backup it made (or drilled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupId>,
    /// The new backup's sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Sizes>,
    /// Backups the retention policy removed after it.
    #[serde(default)]
    pub pruned: u32,
    /// Problems that did not fail the run (an after-hook, a webhook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// A drill of a base backup: the recovery point and time it achieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
}

/// What a drill of a base backup achieved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// How old the newest archived WAL was when the drill started: what a
    /// restore then would have lost at most.
    pub rpo_seconds: Option<f64>,
    /// How long restoring and recovering took.
    pub rto_seconds: f64,
}

impl RunRecord {
    /// Seconds the run took.
    pub fn duration_seconds(&self) -> f64 {
        (self.finished_at - self.started_at).as_seconds_f64()
    }

    fn key(&self) -> String {
        format!(
            "{HISTORY_PREFIX}{}/{}-{}-{:08x}.json",
            self.job,
            self.started_at.format("%Y%m%dT%H%M%S%.3fZ"),
            self.kind,
            rand::random::<u32>()
        )
    }
}

/// Stores a run record.
pub(crate) async fn record(store: &dyn Store, record: &RunRecord) -> Result<()> {
    check_job_name(&record.job).map_err(|problem| Error::InvalidOption {
        option: "job name",
        problem,
    })?;
    let json = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::Interrupted(format!("cannot encode the run record: {e}")))?;
    store.put_bytes(&record.key(), Bytes::from(json)).await?;
    Ok(())
}

/// The run history of `job` (or of every job), oldest first; records that
/// cannot be read are skipped with a warning in the log.
pub(crate) async fn history(store: &dyn Store, job: Option<&str>) -> Result<Vec<RunRecord>> {
    let prefix = match job {
        Some(job) => {
            check_job_name(job).map_err(|problem| Error::InvalidOption {
                option: "job name",
                problem,
            })?;
            format!("{HISTORY_PREFIX}{job}/")
        }
        None => HISTORY_PREFIX.to_owned(),
    };
    let mut records = Vec::new();
    for object in store.list(&prefix).await? {
        match run_record(store, &object.key).await? {
            Some(r) => records.push(r),
            None => tracing::warn!(key = %object.key, "unreadable run record"),
        }
    }
    records.sort_by(|a, b| (a.started_at, &a.job).cmp(&(b.started_at, &b.job)));
    Ok(records)
}

/// One run record by its store key (under [`HISTORY_PREFIX`]); `None` when
/// the object is not a run record.
pub(crate) async fn run_record(store: &dyn Store, key: &str) -> Result<Option<RunRecord>> {
    let bytes = store.get_bytes(key, MAX_RECORD).await?;
    Ok(serde_json::from_slice::<RunRecord>(&bytes).ok())
}

/// Job names become backup names, history keys and store keys: 1-64 ASCII
/// letters, digits, `-`, `_` and `.`, not starting with `.`.
///
/// # Errors
///
/// When `name` is not such a name; the message quotes it.
pub fn check_job_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "job name `{}` must be 1-64 letters, digits, `-`, `_` or `.`",
            name.escape_debug()
        ))
    }
}
