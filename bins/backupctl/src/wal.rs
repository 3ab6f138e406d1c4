//! `wal-push`, `wal-fetch` and `wal`: PostgreSQL's WAL archive.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use backup_core::wal::{Pushed, WalName};
use backup_core::{KeySpec, PipelineOptions};

use crate::args::{DecryptArgs, RepoArgs};
use crate::{Out, keys, repository};

/// `backupctl wal-push FILE`.
pub(crate) async fn push(
    file: &Path,
    recipients: &[String],
    recipients_file: &[PathBuf],
    level: i32,
    repo: &RepoArgs,
    out: Out,
) -> Result<cli::Status> {
    let mut spec = KeySpec::new();
    for key in recipients {
        spec = spec.with_recipient(key);
    }
    for f in recipients_file {
        spec = spec.with_recipients_file(f);
    }
    spec.check()?;
    let recipients = keys::recipients(spec)?;
    let repo = repository(repo).await?;
    let pipeline = PipelineOptions::default().with_level(level);
    let pushed = repo.wal_push(file, &recipients, &pipeline).await?;
    let (record, stored) = match &pushed {
        Pushed::Stored(r) => (r, true),
        Pushed::AlreadyArchived(r) => (r, false),
    };
    if out.json {
        cli::print_json(&serde_json::json!({ "stored": stored, "record": record }))?;
    } else if !out.quiet {
        let what = if stored {
            format!(
                "archived {} ({} -> {})",
                record.name,
                cli::format_size(record.sizes.raw),
                cli::format_size(record.sizes.stored)
            )
        } else {
            format!("{} was archived before with the same content", record.name)
        };
        eprintln!("{what}");
    }
    Ok(cli::Status::Success)
}

/// `backupctl wal-fetch NAME PATH`.
pub(crate) async fn fetch(
    name: &str,
    dest: &Path,
    log: Option<&Path>,
    keys_args: &DecryptArgs,
    repo: &RepoArgs,
    out: Out,
) -> Result<cli::Status> {
    let result = fetch_one(name, dest, keys_args, repo).await;
    if let Some(log) = log {
        let line = match &result {
            Ok(()) => format!("fetched {name}\n"),
            Err(e) if is_missing(e) => format!("missing {name}\n"),
            Err(e) => format!("failed {name} {}\n", format!("{e:#}").replace('\n', " ")),
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        f.write_all(line.as_bytes())?;
    }
    match result {
        // PostgreSQL asks for files past the end of the archive (and for
        // history files that were never made): not worth an error line.
        Err(e) if is_missing(&e) => {
            if !out.quiet {
                eprintln!("{name} is not in the repository");
            }
            Ok(cli::Status::Failure)
        }
        other => other.map(|()| cli::Status::Success),
    }
}

fn is_missing(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<backup_core::Error>())
        .any(|e| matches!(e, backup_core::Error::WalMissing { .. }))
}

async fn fetch_one(
    name: &str,
    dest: &Path,
    keys_args: &DecryptArgs,
    repo: &RepoArgs,
) -> Result<()> {
    let name = WalName::parse(name)?;
    let repo = repository(repo).await?;
    let identities = keys::decryptors(keys_args, &format!("WAL file {name}"), false)?;
    repo.wal_fetch(&name, dest, &identities).await?;
    Ok(())
}

/// `backupctl wal list`.
pub(crate) async fn list(repo: &RepoArgs, out: Out) -> Result<cli::Status> {
    let repo = repository(repo).await?;
    let names = repo.wal_list().await?;
    if out.json {
        let names: Vec<&str> = names.iter().map(WalName::as_str).collect();
        cli::print_json(&names)?;
    } else {
        for name in &names {
            println!("{name}");
        }
    }
    Ok(cli::Status::Success)
}

/// `backupctl wal verify`.
pub(crate) async fn verify(repo: &RepoArgs, out: Out) -> Result<cli::Status> {
    let repo = repository(repo).await?;
    let report = repo.wal_verify().await?;
    if out.json {
        cli::print_json(&report)?;
    } else if report.is_empty() {
        println!("no base backups (backup --physical) to check the WAL archive against");
    } else {
        for b in &report {
            let newest = match (&b.newest, b.newest_pushed_at) {
                (Some(n), Some(at)) => {
                    format!("{n} (archived {})", at.format("%Y-%m-%d %H:%M:%S UTC"))
                }
                (Some(n), None) => n.clone(),
                (None, _) => "nothing".into(),
            };
            let state = if b.is_complete() {
                "ok".to_owned()
            } else if b.missing_count == 0 {
                format!(
                    "NOT RESTORABLE: its WAL up to {} is not archived",
                    b.consistent_at
                )
            } else {
                format!(
                    "{} missing: {}{}",
                    b.missing_count,
                    b.missing.join(", "),
                    if b.missing_count as usize > b.missing.len() {
                        ", ..."
                    } else {
                        ""
                    }
                )
            };
            println!(
                "{}  timeline {} -> {}  from {} to {}  {state}",
                b.id, b.timeline, b.latest_timeline, b.first, newest
            );
        }
    }
    let broken = report.iter().filter(|b| !b.is_complete()).count();
    if broken > 0 {
        anyhow::bail!("{broken} base backup(s) cannot be recovered past a gap in the WAL archive");
    }
    Ok(cli::Status::Success)
}
