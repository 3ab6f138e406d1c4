//! `restore`, `verify` and restore drills.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use backup_core::manifest::SourceInfo;
use backup_core::postgres::{PgRestoreOptions, PgTarget, RecoveryTarget};
use backup_core::{BackupRef, Manifest, Progress, RestoreOptions, RestoreTarget, SourceSpec};

use crate::args::{DecryptArgs, PgRestoreArgs, RepoArgs, WhichArgs};
use crate::progress::Bar;
use crate::{Out, backup_ref, keys, output, repository, usage};

/// A restore's progress bar, and options that report to it.
/// Where `restore` goes, and how.
pub(crate) struct Target {
    pub path: PathBuf,
    pub force: bool,
    /// Only these paths of a directory backup.
    pub include: Vec<String>,
    /// For a base backup: where recovery stops.
    pub to: Option<RecoveryTarget>,
}

fn restoring(quiet: bool, manifest: &Manifest, force: bool) -> (Arc<Bar>, RestoreOptions) {
    let bar = Bar::new(quiet, "restoring");
    bar.set_total(manifest.sizes.raw);
    let opts = RestoreOptions::default()
        .with_force(force)
        .with_progress(Arc::clone(&bar) as Arc<dyn Progress>);
    (bar, opts)
}

pub(crate) fn pg_restore_options(
    pg: &PgRestoreArgs,
    force: bool,
    bar: &Arc<Bar>,
) -> PgRestoreOptions {
    PgRestoreOptions {
        force,
        no_owner: pg.no_owner,
        bin_dir: pg.pg_bin.clone(),
        progress: Arc::clone(bar) as Arc<dyn Progress>,
        container: pg.container.clone(),
    }
}

pub(crate) async fn restore(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    target: Target,
    pg: &PgRestoreArgs,
    out: Out,
) -> Result<cli::Status> {
    let Target {
        path: target,
        mut force,
        include,
        to,
    } = target;
    let quiet = out.quiet || out.json;
    let which = backup_ref(which)?;
    let repo = repository(repo_args).await?;
    let manifest = match (&which, to) {
        (BackupRef::Latest { name }, Some(to)) => {
            crate::pitr::base_for(&repo, name.as_deref(), to).await?
        }
        _ => repo.find(&which).await?,
    };
    let ids = keys::identities(keys, &manifest)?;
    if let SourceInfo::PostgresBase(_) = &manifest.source {
        let to = to.unwrap_or(RecoveryTarget::Latest);
        return crate::pitr::restore(
            &repo,
            repo_args,
            &manifest,
            &ids,
            keys,
            &target,
            to,
            pg.pg_bin.clone(),
            out,
        )
        .await;
    }
    if to.is_some() {
        return Err(usage(format!(
            "--to goes with a PostgreSQL base backup (backup --physical); {} is not one",
            manifest.id
        )));
    }
    let spec = target.to_str().and_then(|t| t.parse::<SourceSpec>().ok());
    if !include.is_empty()
        && matches!(
            spec,
            Some(SourceSpec::Postgres(_) | SourceSpec::DockerVolume(_))
        )
    {
        return Err(usage(
            "--include goes with a directory backup restored to a path",
        ));
    }
    if let Some(SourceSpec::Postgres(database)) = &spec {
        let db = PgTarget::parse(&database.url).map_err(|e| usage(e.to_string()))?;
        let bar = Bar::new(quiet, "restoring");
        bar.set_total(manifest.sizes.raw);
        let started = Instant::now();
        let result = repo
            .restore_postgres(&manifest, &ids, &db, &pg_restore_options(pg, force, &bar))
            .await;
        bar.finish();
        let report = result?;
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        if out.json {
            cli::print_json(&serde_json::json!({
                "backup": manifest.id,
                "target": report.target,
                "created": report.created,
                "tool": report.tool,
                "warnings": report.warnings,
                "seconds": started.elapsed().as_secs_f64(),
            }))?;
        } else if !quiet {
            eprintln!(
                "restored backup {} into {}{} with {} in {}",
                manifest.id,
                report.target,
                if report.created { " (created)" } else { "" },
                report.tool,
                cli::format_duration(started.elapsed())
            );
        }
        return Ok(if report.warnings.is_empty() {
            cli::Status::Success
        } else {
            cli::Status::Warnings
        });
    }
    if let Some(SourceSpec::DockerVolume(v)) = &spec {
        let volume = v.volume.as_str();
        let (bar, opts) = restoring(quiet, &manifest, force);
        let started = Instant::now();
        let result = repo.restore_volume(&manifest, &ids, volume, &opts).await;
        bar.finish();
        let report = result?;
        if out.json {
            cli::print_json(&output::restore_json(&manifest, &report, started.elapsed()))?;
        } else if !quiet {
            eprintln!(
                "restored backup {} into Docker volume {volume} in {}",
                manifest.id,
                cli::format_duration(started.elapsed())
            );
        }
        return Ok(cli::Status::Success);
    }
    let target = if target.as_os_str() == "-" {
        if io::stdout().is_terminal() {
            return Err(usage(
                "refusing to write a backup to a terminal; redirect standard output",
            ));
        }
        RestoreTarget::Writer(Box::new(io::stdout()))
    } else {
        if !force && occupied(&target) && confirm(&target)? {
            force = true;
        }
        RestoreTarget::Path(target)
    };
    let (bar, opts) = restoring(quiet, &manifest, force);
    let opts = opts.with_include(include);
    let started = Instant::now();
    let result = repo.restore(&manifest, &ids, target, &opts).await;
    bar.finish();
    let report = result?;
    if out.json {
        cli::print_json(&output::restore_json(&manifest, &report, started.elapsed()))?;
    } else if !quiet {
        eprintln!(
            "restored backup {} ({}{}) to {} in {}",
            manifest.id,
            cli::format_size(report.bytes),
            report
                .entries
                .map(|n| format!(", {n} entries"))
                .unwrap_or_default(),
            report.target,
            cli::format_duration(started.elapsed())
        );
    }
    Ok(cli::Status::Success)
}

/// True when `path` is a non-empty directory or a non-empty file.
fn occupied(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some()),
        Ok(md) => md.len() > 0,
        Err(_) => false,
    }
}

/// Asks on the terminal whether to restore over `path`; false when there is
/// no terminal to ask on.
fn confirm(path: &Path) -> Result<bool> {
    if !(io::stdin().is_terminal() && io::stderr().is_terminal()) {
        return Ok(false);
    }
    eprint!("{} is not empty. Restore over it? [y/N] ", path.display());
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// `backupctl ls`: streams the entries out as they come, so a backup of
/// millions of files lists in constant memory.
pub(crate) async fn ls(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    path: &str,
    out: Out,
) -> Result<cli::Status> {
    let which = backup_ref(which)?;
    let repo = repository(repo_args).await?;
    let manifest = repo.find(&which).await?;
    let ids = keys::identities(keys, &manifest)?;
    let json = out.json;
    let shown = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = Arc::clone(&shown);
    if json {
        print!("[");
    }
    let listed = repo
        .ls(&manifest, &ids, path, move |e| {
            let first = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
            let mut stdout = io::stdout().lock();
            let line = if json {
                format!(
                    "{}{}",
                    if first { "\n" } else { ",\n" },
                    output::entry_json(&e)
                )
            } else {
                format!("{}\n", output::entry_line(&e))
            };
            stdout
                .write_all(line.as_bytes())
                .map_err(|e| backup_core::Error::Interrupted(format!("writing the listing: {e}")))
        })
        .await?;
    if json {
        println!("\n]");
    }
    if shown.load(std::sync::atomic::Ordering::Relaxed) == 0 && !matches!(path, "" | ".") {
        return Err(backup_core::Error::NotInBackup {
            id: manifest.id.to_string(),
            path: path.to_owned(),
        }
        .into());
    }
    if listed == backup_core::Listed::Data && !out.quiet && !json {
        eprintln!(
            "note: backup {} has no index (made before indexes existed): its data was read",
            manifest.id
        );
    }
    Ok(cli::Status::Success)
}

pub(crate) async fn verify(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    out: Out,
) -> Result<cli::Status> {
    let json = out.json;
    let which = backup_ref(which)?;
    let repo = repository(repo_args).await?;
    let manifest = repo.find(&which).await?;
    let ids = keys::identities(keys, &manifest)?;
    let bar = Bar::new(out.quiet || json, "verifying");
    bar.set_total(manifest.sizes.raw);
    let started = Instant::now();
    let result = repo
        .verify(&manifest, &ids, Arc::clone(&bar) as Arc<dyn Progress>)
        .await;
    bar.finish();
    let report = result?;
    if json {
        cli::print_json(&output::verify_json(&report, started.elapsed()))?;
    } else {
        println!(
            "ok: backup {} verified: {} stored, {} plaintext{}, SHA-256 digests match ({})",
            report.id,
            cli::format_size(report.stored),
            cli::format_size(report.raw),
            report
                .entries
                .map(|n| format!(", {n} archive entries"))
                .unwrap_or_default(),
            cli::format_duration(started.elapsed())
        );
    }
    Ok(cli::Status::Success)
}

pub(crate) async fn drill(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    scratch: Option<&str>,
    to: Option<RecoveryTarget>,
    pg: &PgRestoreArgs,
    out: Out,
) -> Result<cli::Status> {
    let (json, quiet) = (out.json, out.quiet);
    let which = backup_ref(which)?;
    let repo = repository(repo_args).await?;
    let manifest = repo.find(&which).await?;
    let ids = keys::identities(keys, &manifest)?;
    if let SourceInfo::PostgresBase(_) = &manifest.source {
        return crate::pitr::drill(
            &repo,
            repo_args,
            &manifest,
            &ids,
            keys,
            to,
            pg.pg_bin.clone(),
            out,
        )
        .await;
    }
    if to.is_some() {
        return Err(usage("--to goes with a drill of a PostgreSQL base backup"));
    }
    let Some(scratch) = scratch else {
        return Err(usage(
            "--restore-test of a database dump needs --scratch, a URL on the server to restore into",
        ));
    };
    let server = PgTarget::parse(scratch).map_err(|e| usage(format!("--scratch: {e}")))?;
    let bar = Bar::new(quiet || json, "restore drill");
    bar.set_total(manifest.sizes.raw);
    let started = Instant::now();
    let result = repo
        .restore_drill(
            &manifest,
            &ids,
            &server,
            &pg_restore_options(pg, false, &bar),
            cli::shutdown_signal(),
        )
        .await;
    bar.finish();
    let report = result?;
    if json {
        cli::print_json(&output::drill_json(&report, started.elapsed()))?;
    } else {
        print!("{}", output::drill_text(&report, started.elapsed()));
    }
    if !report.dropped {
        eprintln!(
            "warning: the scratch database {} could not be dropped; drop it by hand",
            report.scratch
        );
    }
    if report.passed() {
        Ok(cli::Status::Success)
    } else {
        // The report (printed above) is the answer; the error is a line
        // for people.
        eprintln!(
            "error: restore drill of backup {} failed: {} of {} tables differ from the \
             manifest, {} restore error(s)",
            report.id,
            report.failed_tables(),
            report.tables.len(),
            report.restore_errors.len()
        );
        Ok(cli::Status::Failure)
    }
}
