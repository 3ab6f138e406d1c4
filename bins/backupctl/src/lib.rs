//! `backupctl`: the command-line face of `backup-core`.
//!
//! `main.rs` parses arguments and calls [`run`]; everything else lives here
//! so tests can reach it. The flags map onto the library's shapes — a
//! source is a [`backup_core::SourceSpec`], keys a
//! [`backup_core::KeySpec`] — the same ones the jobs config and the C ABI
//! use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use backup_core::{BackupRef, Manifest, Repository, S3Location, S3Options, S3Store};

pub mod args;
mod backup;
mod defaults;
mod jobs;
mod keys;
mod output;
mod progress;
mod restore;

pub use args::Cli;
use args::{Command, RepoArgs, WhichArgs};
pub use cli::{UsageError, usage};

/// The flag that fixes an error, for the errors a flag can fix (the
/// library's messages never name flags).
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let core = e
        .chain()
        .find_map(|c| c.downcast_ref::<backup_core::Error>())?;
    match core {
        backup_core::Error::TargetNotEmpty { .. } => {
            Some("pass --force to restore over what is there".into())
        }
        backup_core::Error::Postgres(pg::Error::ToolMissing { .. }) => {
            Some("point --pg-bin (or SHIPSHAPE_PG_BIN) at the directory of the right tools".into())
        }
        _ => None,
    }
}

/// Runs one command.
///
/// # Errors
///
/// Whatever the command fails with; a [`UsageError`] for flags that do not
/// go together.
pub async fn run(cli: Cli) -> Result<()> {
    let quiet = cli.log.quiet;
    match cli.command {
        Command::Keygen { output } => keygen(output),
        Command::Backup(args) => backup::backup(args, quiet).await,
        Command::Import {
            file,
            name,
            keys,
            repo,
            json,
        } => backup::import(&repo, &file, name, &keys, json, quiet).await,
        Command::List { repo, name, json } => list(&repo, name.as_deref(), json).await,
        Command::Restore {
            which,
            target,
            force,
            pg,
            keys,
            repo,
        } => restore::restore(&repo, &which, &keys, target, force, &pg, quiet).await,
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
        } => restore::drill(&repo, &which, &keys, &scratch, &pg, json, quiet).await,
        Command::Verify {
            which,
            keys,
            repo,
            json,
            ..
        } => restore::verify(&repo, &which, &keys, json, quiet).await,
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
    let public = keys::keygen(&path)?;
    eprintln!(
        "wrote identity {} (mode 0600); its public key:",
        path.display()
    );
    println!("{public}");
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

async fn list(args: &RepoArgs, name: Option<&str>, json: bool) -> Result<()> {
    let repo = repository(args).await?;
    let listing = repo.list().await?;
    let backups: Vec<&Manifest> = listing
        .backups
        .iter()
        .filter(|m| name.is_none_or(|n| m.name == n))
        .collect();
    if json {
        cli::print_json(&backups)?;
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

/// The backup `which` names.
pub(crate) async fn find(repo: &Repository, which: &WhichArgs) -> Result<Manifest> {
    let mut r: BackupRef = which.backup.parse().map_err(usage)?;
    if let Some(name) = &which.name {
        match &mut r {
            BackupRef::Latest { name: n } => *n = Some(name.clone()),
            BackupRef::Id(_) => return Err(usage("--name only goes with `latest`")),
        }
    }
    Ok(repo.find(&r).await?)
}

async fn gc(repo_args: &RepoArgs, older_than: Duration, apply: bool, json: bool) -> Result<()> {
    let repo = repository(repo_args).await?;
    let report = repo.gc(older_than, apply).await?;
    if json {
        cli::print_json(&output::gc_json(&report))?;
    } else {
        print!("{}", output::gc_text(&report, older_than));
    }
    Ok(())
}
