//! `backupctl`: the command-line face of `backup-core`.
//!
//! `main.rs` parses arguments and calls [`run`]; everything else lives here
//! so tests can reach it.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use backup_core::age::secrecy::SecretString;
use backup_core::docker::VolumeSource;
use backup_core::postgres::{PgRestoreOptions, PgSource, PgTarget};
use backup_core::{
    BackupOptions, BackupRef, Identities, Manifest, PipelineOptions, Progress, Recipients,
    Repository, RestoreOptions, RestoreTarget, S3Location, S3Options, S3Store, Source, keys,
};
use indicatif::HumanBytes;

pub mod cli;
mod defaults;
mod jobs;
mod output;
mod progress;

pub use cli::Cli;
use cli::{BackupArgs, Command, DecryptArgs, PassphraseArgs, PgRestoreArgs, RepoArgs, WhichArgs};
use progress::Bar;

/// A mistake in how the command was called: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The exit status for an error returned by [`run`].
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        2
    } else {
        1
    }
}

/// Sets up logging to standard error: warnings by default, more with `-v`,
/// or whatever `SHIPSHAPE_LOG` says (e.g. `backup_core=debug`).
pub fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHIPSHAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Keygen { output } => keygen(output),
        Command::Backup(args) => backup(args, quiet).await,
        Command::Import {
            file,
            name,
            keys,
            repo,
            json,
        } => import(&repo, &file, name, &keys, json, quiet).await,
        Command::List { repo, name, json } => list(&repo, name.as_deref(), json).await,
        Command::Restore {
            which,
            target,
            force,
            pg,
            keys,
            repo,
        } => restore(&repo, &which, &keys, target, force, &pg, quiet).await,
        Command::Gc {
            older_than,
            apply,
            repo,
            json,
        } => gc(&repo, older_than, apply, json).await,
        Command::Verify {
            which,
            restore_test: true,
            scratch: Some(scratch),
            pg,
            keys,
            repo,
            json,
        } => drill(&repo, &which, &keys, &scratch, &pg, json, quiet).await,
        Command::Verify {
            which,
            keys,
            repo,
            json,
            ..
        } => verify(&repo, &which, &keys, json, quiet).await,
        Command::Prune(args) => jobs::prune(&args).await,
        Command::Schedule(cmd) => jobs::schedule(&cmd),
        Command::Run {
            job,
            config,
            drill,
            json,
        } => jobs::run(&job, &config, drill, json).await,
        Command::Daemon { config } => jobs::daemon(&config).await,
        Command::History {
            config,
            job,
            last,
            repo,
            json,
        } => jobs::history(config.as_deref(), job.as_deref(), last, &repo, json).await,
    }
}

fn keygen(output: Option<PathBuf>) -> Result<()> {
    let path = match output {
        Some(p) => p,
        None => defaults::identity_path()?,
    };
    let key = keys::generate();
    keys::write_identity_file(&path, &key)?;
    eprintln!(
        "wrote identity {} (mode 0600); its public key:",
        path.display()
    );
    println!("{}", key.to_public());
    Ok(())
}

/// Opens the repository `--repo` (or the default) names: a directory or an
/// `s3://` location.
pub(crate) async fn repository(args: &RepoArgs) -> Result<Repository> {
    let spec = match &args.repo {
        Some(spec) => spec.clone(),
        None => defaults::repo_path()?.into_os_string(),
    };
    let Some(s3) = spec.to_str().filter(|s| s.starts_with("s3://")) else {
        return Ok(Repository::local(PathBuf::from(spec)));
    };
    let location: S3Location = s3
        .parse()
        .map_err(|e: backup_core::Error| usage(e.to_string()))?;
    let opts = S3Options {
        part_size: usize::try_from(args.s3_part_size).unwrap_or(usize::MAX),
        concurrency: usize::from(args.s3_concurrency),
        path_style: args.s3_virtual_hosted.then_some(false),
        ..S3Options::default()
    };
    if opts.part_size < backup_core::store::s3::MIN_PART_SIZE {
        return Err(usage(
            "--s3-part-size must be at least 5MiB (the S3 minimum)",
        ));
    }
    let store = S3Store::connect(location, opts).await?;
    Ok(Repository::new(Arc::new(store)))
}

fn passphrase(args: &PassphraseArgs) -> Result<Option<SecretString>> {
    if let Some(file) = &args.passphrase_file {
        return Ok(Some(keys::read_passphrase_file(file)?));
    }
    if let Some(var) = &args.passphrase_env {
        return keys::read_passphrase_env(var)
            .map(Some)
            .map_err(|e| usage(format!("--passphrase-env: {e}")));
    }
    Ok(None)
}

/// Who the backup is encrypted to, creating the default identity when
/// nothing was specified.
fn recipients(args: &BackupArgs) -> Result<Recipients> {
    let pass = passphrase(&args.passphrase)?;
    let mut keys_given: Vec<String> = args.recipients.clone();
    if let Some(file) = &args.recipients_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read recipients file {}", file.display()))?;
        keys_given.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if let Some(file) = &args.identity {
        let ids = Identities::from_file(file)?;
        keys_given.extend(ids.recipients().iter().map(ToString::to_string));
    }
    match (pass, keys_given.is_empty()) {
        (Some(_), false) => Err(usage(
            "a backup is encrypted either to a passphrase or to public keys, not both",
        )),
        (Some(p), true) => Ok(Recipients::passphrase(p)),
        (None, false) => Ok(Recipients::parse(keys_given)?),
        (None, true) => {
            let path = defaults::identity_path()?;
            let ids = if path.exists() {
                Identities::from_file(&path)?
            } else {
                let key = keys::generate();
                keys::write_identity_file(&path, &key)?;
                eprintln!(
                    "created identity {} (mode 0600) with public key {}\n\
                     keep a copy of it somewhere safe: without it these backups cannot be restored",
                    path.display(),
                    key.to_public()
                );
                Identities::from_key(key)
            };
            Ok(Recipients::Keys(ids.recipients()))
        }
    }
}

/// The postgres:// URL `arg` spells, if it is one.
fn postgres_url(arg: &Path) -> Option<&str> {
    arg.to_str()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// A restore's progress bar, and options that report to it.
fn restoring(quiet: bool, manifest: &Manifest, force: bool) -> (Arc<Bar>, RestoreOptions) {
    let bar = Bar::new(quiet, "restoring");
    bar.set_total(manifest.sizes.raw);
    let opts = RestoreOptions::default()
        .with_force(force)
        .with_progress(Arc::clone(&bar) as Arc<dyn Progress>);
    (bar, opts)
}

/// The volume name `arg` spells as `docker-volume:NAME`, if it does.
fn docker_volume(arg: &Path) -> Option<&str> {
    arg.to_str()
        .and_then(|s| s.strip_prefix("docker-volume:"))
        .filter(|v| !v.is_empty())
}

async fn backup(args: BackupArgs, quiet: bool) -> Result<()> {
    let url = args.path.as_deref().and_then(postgres_url);
    let volume = args.path.as_deref().and_then(docker_volume);
    if args.stop_label.is_some() && volume.is_none() {
        return Err(usage("--stop-label goes with docker-volume:NAME"));
    }
    if args.globals && url.is_none() {
        return Err(usage("--globals goes with a postgres:// URL"));
    }
    let source = match (&args.path, args.command.split_first()) {
        (None, Some((program, rest))) => Source::command(program, rest.iter().cloned()),
        (Some(_), None) if url.is_some() => {
            let target =
                PgTarget::parse(url.unwrap_or_default()).map_err(|e| usage(e.to_string()))?;
            let mut pg = if args.globals {
                PgSource::globals(target)
            } else {
                PgSource::database(target).with_row_counts(args.row_counts)
            };
            if let Some(dir) = &args.pg_bin {
                pg = pg.with_bin_dir(dir);
            }
            pg.into()
        }
        (Some(_), None) if volume.is_some() => {
            let mut v = VolumeSource::new(volume.unwrap_or_default());
            if let Some(label) = &args.stop_label {
                v = v.with_stop_label(label);
            }
            Source::DockerVolume(v)
        }
        (Some(p), None) if p.as_os_str() == "-" => Source::Stdin,
        (Some(p), None) => Source::path(p),
        _ => return Err(usage("give either PATH (or `-`) or `-- COMMAND`, not both")),
    };
    let recipients = recipients(&args)?;
    let repo = repository(&args.repo).await?;
    let mut pipeline = PipelineOptions::default().with_level(args.level);
    if let Some(threads) = args.threads {
        pipeline.workers = threads as usize;
    }
    if let Some(kib) = args.frame_size {
        pipeline.frame_size = kib as usize * 1024;
    }
    let bar = Bar::new(quiet, "backing up");
    // Only worth a walk of the tree when someone watches the bar.
    if let Some(total) = bar.is_visible().then(|| source.estimate_size()).flatten() {
        bar.set_total(total);
    }
    let mut opts = BackupOptions::new(recipients)
        .with_pipeline(pipeline)
        .with_skip_unreadable(args.skip_unreadable)
        .with_progress(Arc::clone(&bar) as Arc<dyn Progress>);
    if let Some(name) = &args.name {
        opts = opts.with_name(name.clone());
    }
    if let Some(time) = args.time {
        opts = opts.with_time(time.with_timezone(&chrono::Utc));
    }
    let index_dir = args
        .index_dir
        .clone()
        .or_else(backup_core::incremental::default_index_dir);
    let is_dir = matches!(&source, Source::Path(p) if p.is_dir());
    if let Some(dir) = index_dir.filter(|_| is_dir) {
        opts = opts.with_index_dir(dir);
    }
    if let Some(parent) = &args.parent {
        let which = match parent.parse::<BackupRef>().map_err(usage)? {
            BackupRef::Latest { .. } => BackupRef::Latest {
                name: Some(args.name.clone().unwrap_or_else(|| source.default_name())),
            },
            id => id,
        };
        opts = opts.with_parent(repo.find(&which).await?);
    }
    let started = Instant::now();
    let result = repo.backup(source, &opts).await;
    bar.finish();
    report_new_backup(&result?, args.json, quiet, started)
}

/// Prints a new backup's id (or manifest) on stdout and a summary on stderr.
fn report_new_backup(manifest: &Manifest, json: bool, quiet: bool, started: Instant) -> Result<()> {
    if json {
        io::stdout().write_all(&manifest.to_json())?;
    } else {
        println!("{}", manifest.id);
    }
    if !quiet {
        eprintln!("{}", output::backup_summary(manifest, started.elapsed()));
    }
    Ok(())
}

async fn list(args: &RepoArgs, name: Option<&str>, json: bool) -> Result<()> {
    let repo = repository(args).await?;
    let listing = repo.list().await?;
    let backups: Vec<&Manifest> = listing
        .backups
        .iter()
        .filter(|m| name.is_none_or(|n| m.name == n))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&backups)?);
    } else {
        print!("{}", output::table(&backups));
    }
    for broken in &listing.broken {
        eprintln!("error: {broken}");
    }
    if !listing.broken.is_empty() {
        bail!("{} manifest(s) could not be read", listing.broken.len());
    }
    Ok(())
}

async fn find(repo: &Repository, which: &WhichArgs) -> Result<Manifest> {
    let mut r: BackupRef = which.backup.parse().map_err(usage)?;
    if let Some(name) = &which.name {
        match &mut r {
            BackupRef::Latest { name: n } => *n = Some(name.clone()),
            BackupRef::Id(_) => return Err(usage("--name only goes with `latest`")),
        }
    }
    Ok(repo.find(&r).await?)
}

async fn import(
    repo_args: &RepoArgs,
    file: &Path,
    name: Option<String>,
    keys: &DecryptArgs,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let repo = repository(repo_args).await?;
    let ids = decryptors(keys, "the file", false)?;
    let bar = Bar::new(quiet, "importing");
    let started = Instant::now();
    let result = repo
        .import(file, &ids, name, Arc::clone(&bar) as Arc<dyn Progress>)
        .await;
    bar.finish();
    report_new_backup(&result?, json, quiet, started)
}

/// The identities to decrypt `m` with.
fn identities(args: &DecryptArgs, m: &Manifest) -> Result<Identities> {
    decryptors(args, &format!("backup {}", m.id), m.encryption.passphrase)
}

/// Identities and passphrase from the flags, the default identity file
/// standing in when neither is given.
fn decryptors(args: &DecryptArgs, what: &str, needs_passphrase: bool) -> Result<Identities> {
    let pass = passphrase(&args.passphrase)?;
    let path = match &args.identity {
        Some(p) => Some(p.clone()),
        None => Some(defaults::identity_path()?).filter(|p| p.exists()),
    };
    let ids = match (&path, pass) {
        (Some(p), Some(pass)) if args.identity.is_some() => {
            Identities::from_file(p)?.with_passphrase(pass)
        }
        (_, Some(pass)) => Identities::passphrase(pass),
        (Some(p), None) => Identities::from_file(p)?,
        (None, None) if needs_passphrase => bail!(
            "{what} is encrypted to a passphrase: pass --passphrase-file FILE or \
             --passphrase-env VAR"
        ),
        (None, None) => bail!(
            "no identity to decrypt {what} with: pass --identity FILE (the default, {}, does \
             not exist)",
            defaults::identity_path()?.display()
        ),
    };
    Ok(ids)
}

async fn gc(repo_args: &RepoArgs, older_than: Duration, apply: bool, json: bool) -> Result<()> {
    let repo = repository(repo_args).await?;
    let report = repo.gc(older_than, apply).await?;
    if json {
        println!("{}", output::gc_json(&report));
    } else {
        print!("{}", output::gc_text(&report, older_than));
    }
    Ok(())
}

fn pg_restore_options(pg: &PgRestoreArgs, force: bool, bar: &Arc<Bar>) -> PgRestoreOptions {
    PgRestoreOptions {
        force,
        no_owner: pg.no_owner,
        bin_dir: pg.pg_bin.clone(),
        progress: Arc::clone(bar) as Arc<dyn Progress>,
    }
}

async fn restore(
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
    let ids = identities(keys, &manifest)?;
    if let Some(url) = postgres_url(&target) {
        let db = PgTarget::parse(url).map_err(|e| usage(e.to_string()))?;
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
                "restored backup {} into {}{} with {} in {:.1?}",
                manifest.id,
                report.target,
                if report.created { " (created)" } else { "" },
                report.tool,
                started.elapsed()
            );
        }
        return Ok(());
    }
    if let Some(volume) = docker_volume(&target) {
        let (bar, opts) = restoring(quiet, &manifest, force);
        let started = Instant::now();
        let result = repo.restore_volume(&manifest, &ids, volume, &opts).await;
        bar.finish();
        result?;
        if !quiet {
            eprintln!(
                "restored backup {} into Docker volume {volume} in {:.1?}",
                manifest.id,
                started.elapsed()
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
            "restored backup {} ({}{}) to {} in {:.1?}",
            manifest.id,
            HumanBytes(report.bytes),
            report
                .entries
                .map(|n| format!(", {n} entries"))
                .unwrap_or_default(),
            report.target,
            started.elapsed()
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

async fn verify(
    repo_args: &RepoArgs,
    which: &WhichArgs,
    keys: &DecryptArgs,
    json: bool,
    quiet: bool,
) -> Result<()> {
    let repo = repository(repo_args).await?;
    let manifest = find(&repo, which).await?;
    let ids = identities(keys, &manifest)?;
    let bar = Bar::new(quiet || json, "verifying");
    bar.set_total(manifest.sizes.raw);
    let started = Instant::now();
    let result = repo
        .verify(&manifest, &ids, Arc::clone(&bar) as Arc<dyn Progress>)
        .await;
    bar.finish();
    if json {
        let value = output::verify_json(&manifest, &result, started.elapsed());
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    let report = result.map_err(|e| anyhow!(e))?;
    if !json {
        println!(
            "ok: backup {} verified: {} stored, {} plaintext{}, SHA-256 digests match ({:.1?})",
            report.id,
            HumanBytes(report.stored),
            HumanBytes(report.raw),
            report
                .entries
                .map(|n| format!(", {n} archive entries"))
                .unwrap_or_default(),
            started.elapsed()
        );
    }
    Ok(())
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub(crate) async fn stop_requested() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn drill(
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
    let ids = identities(keys, &manifest)?;
    let bar = Bar::new(quiet || json, "restore drill");
    bar.set_total(manifest.sizes.raw);
    let started = Instant::now();
    let result = repo
        .restore_drill(
            &manifest,
            &ids,
            &server,
            &pg_restore_options(pg, false, &bar),
            stop_requested(),
        )
        .await;
    bar.finish();
    let report = result?;
    if json {
        println!("{}", output::drill_json(&report, started.elapsed()));
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
