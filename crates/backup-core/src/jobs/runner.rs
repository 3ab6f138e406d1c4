//! One run of a job: hooks, the backup (or drill), retention, the webhook
//! and the history record.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::clock::Clock;
use super::config::{Job, Notify};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::ops::backup::BackupOptions;
use crate::ops::history::{Outcome, RunKind, RunRecord};
use crate::ops::list::BackupRef;
use crate::repo::Repository;
use crate::source::SourceSpec;

/// The error of a repository that could not be opened, for the run (the
/// original stays for the history record).
fn unusable(location: &str, e: &Error) -> Error {
    match e {
        Error::InvalidLocation { location, problem } => Error::InvalidLocation {
            location: location.clone(),
            problem: problem.clone(),
        },
        Error::RepositoryMissing { location } => Error::RepositoryMissing {
            location: location.clone(),
        },
        other => Error::InvalidLocation {
            location: location.to_owned(),
            problem: other.to_string(),
        },
    }
}

/// Webhook attempts before giving up, and the wait before each retry.
const WEBHOOK_RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// What a run produced before the after-hooks.
struct Done {
    backup: Option<Manifest>,
    pruned: u32,
    drilled: Option<crate::manifest::BackupId>,
    recovery: Option<crate::ops::history::Recovery>,
}

/// Runs `kind` of `job` now: before-hooks, the work, retention (after a
/// successful backup), after-hooks, then the webhook and the history
/// record. Never returns an error: every failure ends up in the record.
/// When `interrupt` completes first, the work is stopped (a partial backup
/// is never listed) and the run is recorded as aborted.
pub async fn run_job(
    job: &Job,
    kind: RunKind,
    clock: &dyn Clock,
    scheduled_for: Option<DateTime<Utc>>,
    interrupt: impl Future<Output = ()> + Send,
) -> RunRecord {
    let started_at = clock.now();
    tracing::info!(job = %job.name, %kind, "run started");
    // A job's repository must have been made with `init`: a typo in the
    // config fails the run instead of starting a new repository.
    let repo = match super::open_repository(&job.repository).await {
        Ok(repo) => repo.check().await.map(|()| repo),
        Err(e) => Err(e),
    };
    let work = async {
        let repo = repo.as_ref().map_err(|e| unusable(&job.repository, e))?;
        hooks(job, kind, "before", &job.hooks.before, &[]).await?;
        work(job, kind, repo, started_at).await
    };
    let (outcome, error, done) = tokio::select! {
        result = work => match result {
            Ok(done) => (Outcome::Success, None, Some(done)),
            Err(e) => (Outcome::Failure, Some(e.to_string()), None),
        },
        () = interrupt => (
            Outcome::Aborted,
            Some("the daemon shut down before the run finished".to_owned()),
            None,
        ),
    };
    let backup = done.as_ref().and_then(|d| d.backup.clone());
    let mut record = RunRecord {
        job: job.name.clone(),
        kind,
        scheduled_for,
        started_at,
        finished_at: started_at,
        outcome,
        error,
        backup: backup
            .as_ref()
            .map(|m| m.id.clone())
            .or_else(|| done.as_ref().and_then(|d| d.drilled.clone())),
        sizes: backup.as_ref().map(|m| m.sizes),
        pruned: done.as_ref().map_or(0, |d| d.pruned),
        warnings: backup.map(|m| m.warnings).unwrap_or_default(),
        recovery: done.as_ref().and_then(|d| d.recovery),
    };
    let env = [
        ("SHIPSHAPE_RESULT", record.outcome.to_string()),
        (
            "SHIPSHAPE_BACKUP_ID",
            record
                .backup
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
        ),
        ("SHIPSHAPE_ERROR", record.error.clone().unwrap_or_default()),
    ];
    if let Err(e) = hooks(job, kind, "after", &job.hooks.after, &env).await {
        record.warnings.push(e.to_string());
    }
    record.finished_at = clock.now().max(started_at);
    if let Some(notify) = &job.notify {
        if record.outcome != Outcome::Success || notify.on_success {
            if let Err(e) = send_webhook(notify, &record).await {
                tracing::warn!(job = %job.name, "webhook: {e}");
                record.warnings.push(format!("webhook: {e}"));
            }
        }
    }
    match &repo {
        Ok(repo) => {
            if let Err(e) = repo.record_run(&record).await {
                tracing::error!(job = %job.name, "cannot record the run: {e}");
            }
        }
        Err(e) => tracing::error!(job = %job.name, "cannot record the run: {e}"),
    }
    match &record.error {
        None => tracing::info!(job = %job.name, %kind, "run succeeded"),
        Some(e) => {
            tracing::error!(job = %job.name, %kind, outcome = ?record.outcome, "run failed: {e}")
        }
    }
    record
}

async fn work(job: &Job, kind: RunKind, repo: &Repository, now: DateTime<Utc>) -> Result<Done> {
    match kind {
        RunKind::Drill => drill(job, repo).await.map(|(id, recovery)| Done {
            backup: None,
            pruned: 0,
            drilled: Some(id),
            recovery,
        }),
        RunKind::Full | RunKind::Incremental => {
            let mut opts = BackupOptions::new(job.keys.recipients()?)
                .with_name(job.name.clone())
                .with_level(job.level)
                .with_skip_unreadable(job.skip_unreadable)
                .with_excludes(job.excludes.clone())
                .with_time(now);
            if let (true, Some(dir)) = (job.source.is_paths(), &job.index_dir) {
                opts = opts.with_index_dir(dir);
                if kind == RunKind::Incremental {
                    opts.parent = incremental_parent(job, repo, dir).await?;
                }
            }
            let manifest = repo.backup(job.source.to_source()?, &opts).await?;
            let pruned = if job.retention.is_empty() {
                0
            } else {
                let plan = repo
                    .prune(&job.retention, &job.zone, Some(&job.name), true)
                    .await
                    .map_err(|e| Error::Retention {
                        id: manifest.id.to_string(),
                        source: Box::new(e),
                    })?;
                u32::try_from(plan.removals().count()).unwrap_or(u32::MAX)
            };
            Ok(Done {
                backup: Some(manifest),
                pruned,
                drilled: None,
                recovery: None,
            })
        }
    }
}

/// The parent for the next incremental of `job`: its newest backup, unless
/// there is none, its chain is already `max_chain` long, or its file index
/// is not on this host; then this run makes a full backup.
async fn incremental_parent(
    job: &Job,
    repo: &Repository,
    index_dir: &std::path::Path,
) -> Result<Option<Manifest>> {
    let max = job.incremental.as_ref().map_or(0, |i| i.max_chain) as usize;
    let backups: Vec<Manifest> = repo
        .list()
        .await?
        .backups
        .into_iter()
        .filter(|m| m.name == job.name)
        .collect();
    let Some(newest) = backups.last() else {
        tracing::info!(job = %job.name, "no backup yet: this incremental run is a full backup");
        return Ok(None);
    };
    let chain = crate::incremental::chain_length(newest, &backups);
    if chain >= max {
        tracing::info!(job = %job.name, chain, "the chain is full: this run is a full backup");
        return Ok(None);
    }
    if !crate::incremental::has_index(index_dir, &newest.id) {
        tracing::warn!(
            job = %job.name,
            parent = %newest.id,
            "the newest backup's file index is not on this host: this run is a full backup"
        );
        return Ok(None);
    }
    Ok(Some(newest.clone()))
}

/// For a database in a container, its URL: the drill's scratch database
/// is made on the same server.
#[cfg(feature = "postgres")]
fn pg_container_url(source: &SourceSpec) -> Option<&String> {
    match source {
        SourceSpec::Postgres(pg) if pg.container.is_some() => Some(&pg.url),
        _ => None,
    }
}

/// Restores the latest backup into a scratch database and checks every
/// table (PostgreSQL), or verifies it (everything else).
async fn drill(
    job: &Job,
    repo: &Repository,
) -> Result<(
    crate::manifest::BackupId,
    Option<crate::ops::history::Recovery>,
)> {
    let ids = job.keys.identities()?;
    let ids = &ids;
    let latest = repo
        .find(&BackupRef::Latest {
            name: Some(job.name.clone()),
        })
        .await?;
    #[cfg(feature = "postgres")]
    if let crate::manifest::SourceInfo::PostgresBase(_) = &latest.source {
        let opts = crate::postgres::RecoverOptions::new(
            crate::postgres::RecoveryTarget::Latest,
            wal_fetch_command(job)?,
        );
        let report = repo
            .drill_physical(&latest, ids, &opts, None, std::future::pending())
            .await?;
        tracing::info!(
            job = %job.name,
            rpo = ?report.rpo_seconds,
            rto = report.rto_seconds,
            tables = report.tables.len(),
            "drill of base backup {} passed", latest.id
        );
        let recovery = crate::ops::history::Recovery {
            rpo_seconds: report.rpo_seconds,
            rto_seconds: report.rto_seconds,
        };
        return Ok((latest.id, Some(recovery)));
    }
    #[cfg(feature = "postgres")]
    if let (SourceSpec::Postgres(pg), Some(scratch)) = (
        &job.source,
        job.drill
            .as_ref()
            .and_then(|d| d.scratch.as_ref())
            .or(pg_container_url(&job.source)),
    ) {
        let mut server = crate::postgres::PgTarget::parse(scratch)?;
        if let Some(secret) = &pg.password {
            server = server.with_password(&secret.read()?);
        }
        let opts = crate::postgres::PgRestoreOptions {
            container: pg.container.clone(),
            ..crate::postgres::PgRestoreOptions::default()
        };
        let report = repo
            .restore_drill(&latest, ids, &server, &opts, std::future::pending())
            .await?;
        if !report.passed() {
            return Err(Error::Corrupt {
                id: latest.id.to_string(),
                problem: format!(
                    "restore drill failed: {} table(s) differ from the manifest{}",
                    report.failed_tables(),
                    if report.restore_errors.is_empty() {
                        String::new()
                    } else {
                        format!("; pg_restore: {}", report.restore_errors.join("; "))
                    }
                ),
            });
        }
        return Ok((latest.id, None));
    }
    repo.verify(&latest, ids, Arc::new(crate::progress::NoProgress))
        .await?;
    Ok((latest.id, None))
}

/// The `restore_command` program of a physical job's drill: this program's
/// `wal-fetch` (the daemon is `backupctl`), with the job's repository and
/// identity files.
#[cfg(feature = "postgres")]
fn wal_fetch_command(job: &Job) -> Result<Vec<String>> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Interrupted(format!("cannot find this program: {e}")))?;
    let mut argv = vec![
        exe.display().to_string(),
        "wal-fetch".into(),
        "-q".into(),
        "--repo".into(),
        job.repository.clone(),
    ];
    if job.keys.identity_files.is_empty() {
        return Err(Error::InvalidOption {
            option: "drill",
            problem: format!(
                "job {}: a base backup's drill fetches WAL with the job's identity_file; \
                 give its keys one",
                job.name
            ),
        });
    }
    for file in &job.keys.identity_files {
        argv.extend([
            "-i".into(),
            std::path::absolute(file)
                .unwrap_or_else(|_| file.clone())
                .display()
                .to_string(),
        ]);
    }
    Ok(argv)
}

/// Runs hook commands with `sh -c`, in order, stopping at the first that
/// fails.
async fn hooks(
    job: &Job,
    kind: RunKind,
    when: &'static str,
    commands: &[String],
    extra: &[(&str, String)],
) -> Result<()> {
    for command in commands {
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .env("SHIPSHAPE_JOB", &job.name)
            .env("SHIPSHAPE_KIND", kind.to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let failed = |problem: String| Error::Hook {
            when,
            command: command.clone(),
            problem,
        };
        let output = tokio::time::timeout(job.hooks.timeout, cmd.output())
            .await
            .map_err(|_| failed(format!("did not finish within {:?}", job.hooks.timeout)))?
            .map_err(|e| failed(format!("could not start: {e}")))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(failed(format!(
                "failed ({}): {}",
                output.status,
                tail.join(" | ")
            )));
        }
    }
    Ok(())
}

/// The JSON body a webhook receives.
#[derive(Serialize)]
struct WebhookBody<'a> {
    /// One line for chat tools (Slack, Mattermost and Discord read `text`).
    text: String,
    host: String,
    #[serde(flatten)]
    run: &'a RunRecord,
    duration_seconds: f64,
}

async fn send_webhook(notify: &Notify, record: &RunRecord) -> std::result::Result<(), String> {
    let host = crate::lock::hostname();
    let verdict = match record.outcome {
        Outcome::Success => "succeeded",
        Outcome::Failure => "FAILED",
        Outcome::Skipped => "was skipped",
        Outcome::Aborted => "was ABORTED",
    };
    let mut text = format!(
        "shipshape on {host}: {} {} {verdict}",
        record.job, record.kind
    );
    if let Some(e) = &record.error {
        text.push_str(": ");
        text.push_str(e);
    }
    let body = WebhookBody {
        text,
        host,
        run: record,
        duration_seconds: record.duration_seconds(),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let url = notify.url().map_err(|e| e.to_string())?;
    let mut waits = WEBHOOK_RETRIES.iter();
    loop {
        let sent = client
            .post(url.expose_secret())
            .header("content-type", "application/json")
            .body(json.clone())
            .send()
            .await;
        // Never show the URL: it often holds a token.
        let problem = match sent {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_client_error() => {
                return Err(format!("the webhook answered {}", r.status()));
            }
            Ok(r) => format!("the webhook answered {}", r.status()),
            Err(e) => format!("cannot reach the webhook: {}", e.without_url()),
        };
        match waits.next() {
            Some(wait) => tokio::time::sleep(*wait).await,
            None => return Err(problem),
        }
    }
}
