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
    let recipients = encrypt_to(recipients, recipients_file)?;
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

/// The -r and -R flags (the default identity's key when none is given).
fn encrypt_to(
    recipients: &[String],
    recipients_file: &[PathBuf],
) -> Result<backup_core::Recipients> {
    let mut spec = KeySpec::new();
    for key in recipients {
        spec = spec.with_recipient(key);
    }
    for f in recipients_file {
        spec = spec.with_recipients_file(f);
    }
    spec.check()?;
    keys::recipients(spec)
}

/// `backupctl wal stream URL`.
pub(crate) async fn stream(args: StreamArgs<'_>, out: Out) -> Result<cli::Status> {
    let target = backup_core::postgres::PgTarget::parse(args.url)
        .map_err(|e| crate::usage(e.to_string()))?;
    let recipients = encrypt_to(args.recipients, args.recipients_file)?;
    let repo = repository(args.repo).await?;
    let mut opts = backup_core::postgres::StreamOptions::new(args.spool);
    opts.slot = args.slot.to_owned();
    opts.partial_every = args.partial_every;
    opts.bin_dir = args.pg_bin;
    let state = std::sync::Arc::new(std::sync::Mutex::new(
        backup_core::postgres::StreamState::default(),
    ));
    if !out.quiet {
        eprintln!("streaming WAL of {target} into the repository (SIGTERM or Ctrl-C stops)");
    }
    repo.stream_wal(
        &target,
        &recipients,
        &opts,
        std::sync::Arc::clone(&state),
        cli::shutdown_signal(),
    )
    .await?;
    let state = state.lock().map(|s| s.clone()).unwrap_or_default();
    if out.json {
        cli::print_json(&state)?;
    } else if !out.quiet {
        eprintln!(
            "stopped: {} files stored, {} failures{}",
            state.stored,
            state.failures,
            state
                .last_stored
                .map(|n| format!(", the last {n}"))
                .unwrap_or_default()
        );
    }
    Ok(cli::Status::Success)
}

/// `wal stream`'s flags.
pub(crate) struct StreamArgs<'a> {
    pub url: &'a str,
    pub spool: &'a Path,
    pub slot: &'a str,
    pub partial_every: std::time::Duration,
    pub recipients: &'a [String],
    pub recipients_file: &'a [PathBuf],
    pub pg_bin: Option<PathBuf>,
    pub repo: &'a RepoArgs,
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
