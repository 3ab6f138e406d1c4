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
mod pitr;
mod progress;
mod restore;
mod wal;

pub use args::Cli;
use args::{Command, RepoArgs, WalCommand, WhichArgs};
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
        backup_core::Error::RepositoryMissing { .. } => Some(
            "create it with `backupctl init --repo LOCATION`, or check --repo and SHIPSHAPE_REPO \
             for a typo"
                .into(),
        ),
        backup_core::Error::WrongKey { .. } => {
            Some("pass the identity that matches with -i FILE (or the passphrase option)".into())
        }
        backup_core::Error::Store { key, .. } if key.starts_with(backup_core::lock::LOCK_PREFIX) => {
            Some("every command writes a lock; --no-lock reads a repository this process cannot write".into())
        }
        backup_core::Error::Locked { .. } => Some(
            "wait for it with --retry-lock DURATION; if its holder is gone, `backupctl unlock` \
             removes it once stale (30 minutes without a refresh)"
                .into(),
        ),
        backup_core::Error::InvalidRecipient { recipient, .. }
            if recipient.contains('/') || recipient.starts_with('.') =>
        {
            Some("-r names a recipient, as in age; the repository is --repo".into())
        }
        backup_core::Error::Key { path, .. } if looks_like_a_key(&path.to_string_lossy()) => {
            Some("-R names a recipients file, as in age; a key itself goes with -r".into())
        }
        _ => None,
    }
}

/// Whether `text` is a public key rather than a file name.
fn looks_like_a_key(text: &str) -> bool {
    text.starts_with("age1") || text.starts_with("ssh-")
}

/// The exit status of the errors that have one of their own: 10 for a
/// missing repository, 12 for a wrong key.
pub fn classify(e: &anyhow::Error) -> Option<cli::Status> {
    let core = e
        .chain()
        .find_map(|c| c.downcast_ref::<backup_core::Error>())?;
    match core {
        backup_core::Error::RepositoryMissing { .. } => Some(cli::Status::RepositoryMissing),
        backup_core::Error::WrongKey { .. } => Some(cli::Status::WrongKey),
        backup_core::Error::Locked { .. } => Some(cli::Status::Locked),
        backup_core::Error::InvalidRecipient { .. } => Some(cli::Status::Usage),
        _ => None,
    }
}

/// How results are printed: `--json`, `-q`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// JSON on standard output.
    pub json: bool,
    /// No progress or summaries.
    pub quiet: bool,
}

/// Runs one command and returns its exit status.
///
/// # Errors
///
/// Whatever the command fails with; a [`UsageError`] for flags that do not
/// go together.
pub async fn run(cli: Cli) -> Result<cli::Status> {
    let out = Out {
        json: cli.output.json,
        quiet: cli.log.quiet,
    };
    match cli.command {
        Command::Init { repo } => init(&repo, out).await,
        Command::Keygen { output } => keygen(output, out),
        Command::Backup(args) => backup::backup(*args, out).await,
        Command::Import {
            file,
            name,
            keys,
            repo,
        } => backup::import(&repo, &file, name, &keys, out).await,
        Command::WalPush {
            file,
            recipients,
            recipients_file,
            level,
            repo,
        } => wal::push(&file, &recipients, &recipients_file, level, &repo, out).await,
        Command::WalFetch {
            name,
            dest,
            log,
            keys,
            repo,
        } => wal::fetch(&name, &dest, log.as_deref(), &keys, &repo, out).await,
        Command::Wal(WalCommand::List { repo }) => wal::list(&repo, out).await,
        Command::Wal(WalCommand::Verify { repo }) => wal::verify(&repo, out).await,
        Command::Wal(WalCommand::Stream {
            url,
            spool,
            slot,
            partial_every,
            recipients,
            recipients_file,
            pg_bin,
            repo,
        }) => {
            let args = wal::StreamArgs {
                url: &url,
                spool: &spool,
                slot: &slot,
                partial_every,
                recipients: &recipients,
                recipients_file: &recipients_file,
                pg_bin,
                repo: &repo,
            };
            wal::stream(args, out).await
        }
        Command::List { repo, name } => list(&repo, name.as_deref(), out).await,
        Command::Restore {
            which,
            include,
            to,
            target,
            force,
            pg,
            keys,
            repo,
        } => {
            let target = restore::Target {
                path: target,
                force,
                include,
                to,
            };
            restore::restore(&repo, &which, &keys, target, &pg, out).await
        }
        Command::Ls {
            which,
            path,
            keys,
            repo,
        } => restore::ls(&repo, &which, &keys, &path, out).await,
        Command::Gc {
            older_than,
            apply,
            repo,
        } => gc(&repo, older_than, apply, out).await,
        Command::Unlock { force, repo } => {
            let found = repository(&repo).await?.unlock(force).await?;
            if force && found.iter().any(|(l, _)| !l.stale) {
                tracing::warn!("live locks removed: their holders stop at their next change");
            }
            if out.json {
                cli::print_json(&output::unlock_json(&found))?;
            } else if !out.quiet {
                print!("{}", output::unlock_text(&found));
            }
            Ok(cli::Status::Success)
        }
        Command::Verify {
            which,
            restore_test: true,
            scratch,
            to,
            pg,
            keys,
            repo,
        } => restore::drill(&repo, &which, &keys, scratch.as_deref(), to, &pg, out).await,
        Command::Verify {
            which, keys, repo, ..
        } => restore::verify(&repo, &which, &keys, out).await,
        Command::Prune(args) => jobs::prune(&args, out).await,
        Command::Schedule(cmd) => jobs::schedule(&cmd, out),
        Command::Run { job, config, drill } => jobs::run(&job, &config, drill, out).await,
        Command::Daemon { config } => jobs::daemon(&config).await,
        Command::History {
            config,
            job,
            last,
            repo,
        } => jobs::history(config.as_deref(), job.as_deref(), last, &repo, out).await,
    }
}

async fn init(args: &RepoArgs, out: Out) -> Result<cli::Status> {
    let (repo, location) = open(args).await?;
    let info = repo.init().await?;
    if out.json {
        cli::print_json(
            &serde_json::json!({ "repository": location, "created": info.created, "version": info.version }),
        )?;
    } else {
        println!("created repository {location}");
    }
    Ok(cli::Status::Success)
}

fn keygen(output: Option<PathBuf>, out: Out) -> Result<cli::Status> {
    let path = match output {
        Some(p) => p,
        None => defaults::identity_path()?,
    };
    let public = keys::keygen(&path)?;
    if out.json {
        cli::print_json(&serde_json::json!({ "identity": path, "recipient": public }))?;
    } else {
        eprintln!(
            "wrote identity {} (mode 0600); its public key:",
            path.display()
        );
        println!("{public}");
    }
    Ok(cli::Status::Success)
}

/// Opens the repository `--repo` (or `SHIPSHAPE_REPO`, or the default)
/// names, and checks that there is one.
pub(crate) async fn repository(args: &RepoArgs) -> Result<Repository> {
    let (repo, _) = open(args).await?;
    repo.check().await?;
    Ok(repo)
}

/// Opens the repository a backup goes to: one that must exist, or the
/// default one, created on first use so that a first backup needs nothing.
pub(crate) async fn backup_repository(args: &RepoArgs, quiet: bool) -> Result<Repository> {
    let (repo, location) = open(args).await?;
    match repo.check().await {
        Err(backup_core::Error::RepositoryMissing { .. }) if defaults::is_default(args) => {
            repo.init().await?;
            if !quiet {
                eprintln!("created repository {location}");
            }
            Ok(repo)
        }
        other => other.map(|()| repo).map_err(Into::into),
    }
}

/// The repository `--repo` (or `SHIPSHAPE_REPO`, or the default) names, a
/// directory or an `s3://` location, and the location as text; nothing is
/// checked or created.
async fn open(args: &RepoArgs) -> Result<(Repository, String)> {
    let spec = match &args.repo {
        Some(spec) => spec.clone(),
        None => defaults::repo_path()?.into_os_string(),
    };
    let location = spec.to_string_lossy().into_owned();
    let locks = backup_core::lock::LockOptions {
        wait: args.retry_lock,
        disabled: args.no_lock,
        ..Default::default()
    };
    let Some(s3) = spec.to_str().filter(|s| s.starts_with("s3://")) else {
        let repo = Repository::local(PathBuf::from(spec)).with_locks(locks);
        return Ok((repo, location));
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
    let repo = Repository::new(Arc::new(store)).with_locks(locks);
    Ok((repo, s3.to_owned()))
}

async fn list(args: &RepoArgs, name: Option<&str>, out: Out) -> Result<cli::Status> {
    let repo = repository(args).await?;
    let listing = repo.list().await?;
    let backups: Vec<&Manifest> = listing
        .backups
        .iter()
        .filter(|m| name.is_none_or(|n| m.name == n))
        .collect();
    if out.json {
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
    Ok(cli::Status::Success)
}

/// The backup `which` names, parsed before any repository is opened so
/// that a usage error is reported as one.
pub(crate) fn backup_ref(which: &WhichArgs) -> Result<BackupRef> {
    let mut r: BackupRef = which.backup.parse().map_err(usage)?;
    if let Some(name) = &which.name {
        match &mut r {
            BackupRef::Latest { name: n } => *n = Some(name.clone()),
            BackupRef::Id(_) => return Err(usage("--name only goes with `latest`")),
        }
    }
    Ok(r)
}

async fn gc(
    repo_args: &RepoArgs,
    older_than: Duration,
    apply: bool,
    out: Out,
) -> Result<cli::Status> {
    let repo = repository(repo_args).await?;
    let report = repo.gc(older_than, apply).await?;
    if out.json {
        cli::print_json(&output::gc_json(&report))?;
    } else {
        print!("{}", output::gc_text(&report, older_than));
    }
    Ok(cli::Status::Success)
}
