//! `restore`, `verify` and restore drills.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use backup_core::postgres::{PgRestoreOptions, PgTarget};
use backup_core::{Manifest, Progress, RestoreOptions, RestoreTarget, SourceSpec};

use crate::args::{DecryptArgs, PgRestoreArgs, RepoArgs, WhichArgs};
use crate::progress::Bar;
use crate::{find, keys, output, repository, usage};

/// A restore's progress bar, and options that report to it.
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
    }
}

pub(crate) async fn restore(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    target: PathBuf,
    mut force: bool,
    pg: &PgRestoreArgs,
    quiet: bool,
) -> Result<()> {
    let repo = repository(repo_args).await?;
    let manifest = find(&repo, which).await?;
    let ids = keys::identities(keys, &manifest)?;
    let spec = target.to_str().and_then(|t| t.parse::<SourceSpec>().ok());
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
        if !quiet {
            eprintln!(
                "restored backup {} into {}{} with {} in {}",
                manifest.id,
                report.target,
                if report.created { " (created)" } else { "" },
                report.tool,
                cli::format_duration(started.elapsed())
            );
        }
        return Ok(());
    }
    if let Some(SourceSpec::DockerVolume(v)) = &spec {
        let volume = v.volume.as_str();
        let (bar, opts) = restoring(quiet, &manifest, force);
        let started = Instant::now();
        let result = repo.restore_volume(&manifest, &ids, volume, &opts).await;
        bar.finish();
        result?;
        if !quiet {
            eprintln!(
                "restored backup {} into Docker volume {volume} in {}",
                manifest.id,
                cli::format_duration(started.elapsed())
            );
        }
        return Ok(());
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
    let started = Instant::now();
    let result = repo.restore(&manifest, &ids, target, &opts).await;
    bar.finish();
    let report = result?;
    if !quiet {
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
    Ok(())
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

pub(crate) async fn verify(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let repo = repository(repo_args).await?;
    let manifest = find(&repo, which).await?;
    let ids = keys::identities(keys, &manifest)?;
    let bar = Bar::new(quiet || json, "verifying");
    bar.set_total(manifest.sizes.raw);
    let started = Instant::now();
    let result = repo
        .verify(&manifest, &ids, Arc::clone(&bar) as Arc<dyn Progress>)
        .await;
    bar.finish();
    if json {
        let value = output::verify_json(&manifest, &result, started.elapsed());
        cli::print_json(&value)?;
    }
    let report = result.map_err(|e| anyhow!(e))?;
    if !json {
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
    Ok(())
}

pub(crate) async fn drill(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    scratch: &str,
    pg: &PgRestoreArgs,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let server = PgTarget::parse(scratch).map_err(|e| usage(format!("--scratch: {e}")))?;
    let repo = repository(repo_args).await?;
    let manifest = find(&repo, which).await?;
    let ids = keys::identities(keys, &manifest)?;
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
        Ok(())
    } else {
        bail!(
            "restore drill of backup {} failed: {} of {} tables differ from the manifest, {} \
             restore error(s)",
            report.id,
            report.failed_tables(),
            report.tables.len(),
            report.restore_errors.len()
        )
    }
}
