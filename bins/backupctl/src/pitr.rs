//! `restore --to`: a base backup recovered to a point in time, proven.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use backup_core::manifest::SourceInfo;
use backup_core::postgres::{RecoverOptions, RecoveryTarget};
use backup_core::{Identities, Manifest, Repository};

use crate::args::{DecryptArgs, RepoArgs};
use crate::{Out, defaults, usage};

/// The newest base backup (named `name`, if given) from which `to` can
/// be reached: finished before the time, or ended before the position.
pub(crate) async fn base_for(
    repo: &Repository,
    name: Option<&str>,
    to: RecoveryTarget,
) -> Result<Manifest> {
    let listing = repo.list().await?;
    let found = listing
        .backups
        .into_iter()
        .filter(|m| name.is_none_or(|n| m.name == n))
        .filter(|m| match (&m.source, to) {
            (SourceInfo::PostgresBase(_), RecoveryTarget::Latest) => true,
            (SourceInfo::PostgresBase(_), RecoveryTarget::Time(t)) => m.finished_at <= t,
            (SourceInfo::PostgresBase(b), RecoveryTarget::Lsn(l)) => b.stop_lsn <= l,
            _ => false,
        })
        .max_by_key(|m| m.finished_at);
    match found {
        Some(m) => Ok(m),
        None => bail!(
            "no PostgreSQL base backup{} in the repository ends before {to}; \
             `backupctl list` shows them (backup --physical makes one)",
            name.map(|n| format!(" named {n}")).unwrap_or_default()
        ),
    }
}

/// The `wal-fetch` command the recovered server runs: this program, the
/// same repository and the same keys, as absolute paths.
fn fetch_command(repo_args: &RepoArgs, keys: &DecryptArgs) -> Result<Vec<String>> {
    let exe = std::env::current_exe()?;
    let mut argv = vec![exe.display().to_string(), "wal-fetch".into(), "-q".into()];
    let repo = match &repo_args.repo {
        Some(r) if r.to_string_lossy().starts_with("s3://") => r.to_string_lossy().into_owned(),
        Some(r) => absolute(Path::new(r))?.display().to_string(),
        None => defaults::repo_path()?.display().to_string(),
    };
    argv.extend(["--repo".into(), repo]);
    let mut identities: Vec<PathBuf> = keys.identity.clone();
    if identities.is_empty() && keys.passphrase.passphrase_file.is_none() {
        identities.push(defaults::identity_path()?);
    }
    for file in identities {
        argv.extend(["-i".into(), absolute(&file)?.display().to_string()]);
    }
    if let Some(file) = &keys.passphrase.passphrase_file {
        argv.extend([
            "--passphrase-file".into(),
            absolute(file)?.display().to_string(),
        ]);
    }
    if keys.passphrase.passphrase_env.is_some() {
        bail!(
            "--passphrase-env cannot reach the recovering server's restore_command: use \
             --passphrase-file"
        );
    }
    Ok(argv)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

/// Restores base backup `manifest` into `dir` and recovers it to `to`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn restore(
    repo: &Repository,
    repo_args: &RepoArgs,
    manifest: &Manifest,
    ids: &Identities,
    keys: &DecryptArgs,
    dir: &Path,
    to: RecoveryTarget,
    pg_bin: Option<PathBuf>,
    out: Out,
) -> Result<cli::Status> {
    if dir.as_os_str() == "-" || dir.to_str().is_some_and(|t| t.contains("://")) {
        return Err(usage(
            "a base backup restores into a directory: give --target DIR (new or empty)",
        ));
    }
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(usage(format!(
            "{} is not empty: a base backup recovers into a new or empty directory",
            dir.display()
        )));
    }
    let opts = RecoverOptions::new(to, fetch_command(repo_args, keys)?).with_bin_dir(pg_bin);
    let started = Instant::now();
    if !out.quiet && !out.json {
        eprintln!(
            "restoring base backup {} into {} and recovering to {to}",
            manifest.id,
            dir.display()
        );
    }
    let report = repo
        .recover_postgres(manifest, ids, dir, &opts, cli::shutdown_signal())
        .await?;
    if out.json {
        cli::print_json(&report)?;
    } else if !out.quiet {
        eprintln!(
            "recovered {} to {}: replayed to {} on timeline {}{}, {} WAL files fetched, in {}\n\
             start the server on it to finish: it promotes and opens",
            report.base,
            report.to,
            report.replay_lsn,
            report.timeline,
            report
                .last_commit
                .map(|c| format!(" (last commit {})", c.format("%Y-%m-%d %H:%M:%S%.3f UTC")))
                .unwrap_or_default(),
            report.fetched,
            cli::format_duration(started.elapsed())
        );
    }
    Ok(cli::Status::Success)
}

/// `verify --restore-test` of a base backup.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn drill(
    repo: &Repository,
    repo_args: &RepoArgs,
    manifest: &Manifest,
    ids: &Identities,
    keys: &DecryptArgs,
    to: Option<RecoveryTarget>,
    pg_bin: Option<PathBuf>,
    out: Out,
) -> Result<cli::Status> {
    let opts = RecoverOptions::new(RecoveryTarget::Latest, fetch_command(repo_args, keys)?)
        .with_bin_dir(pg_bin);
    let report = repo
        .drill_physical(manifest, ids, &opts, to, cli::shutdown_signal())
        .await?;
    if out.json {
        cli::print_json(&report)?;
        return Ok(cli::Status::Success);
    }
    let r = &report.recovery;
    let mut table = cli::Table::new(["DATABASE", "TABLE", "ROWS"]);
    for t in &report.tables {
        table.row([
            t.database.clone(),
            format!("{}.{}", t.schema, t.name),
            t.rows.to_string(),
        ]);
    }
    print!("{table}");
    println!(
        "drill of base backup {}: recovered to {} (replayed to {} on timeline {}{}), {} tables \
         counted, everything removed",
        r.base,
        r.to,
        r.replay_lsn,
        r.timeline,
        r.last_commit
            .map(|c| format!(", last commit {}", c.format("%Y-%m-%d %H:%M:%S%.3f UTC")))
            .unwrap_or_default(),
        report.tables.len()
    );
    println!(
        "RPO {} (newest archived WAL {}), RTO {}",
        report
            .rpo_seconds
            .map(|s| cli::format_duration(std::time::Duration::from_secs_f64(s)))
            .unwrap_or_else(|| "unknown".into()),
        r.newest_archived.as_deref().unwrap_or("none"),
        cli::format_duration(std::time::Duration::from_secs_f64(report.rto_seconds))
    );
    Ok(cli::Status::Success)
}
