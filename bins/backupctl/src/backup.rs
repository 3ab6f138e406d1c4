//! `backup` and `import`.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use backup_core::{
    BackupOptions, BackupRef, Manifest, PipelineOptions, Progress, Source, SourceSpec,
};

use crate::args::{BackupArgs, DecryptArgs, RepoArgs};
use crate::progress::Bar;
use crate::{Out, backup_repository, keys, output, usage};

/// The source the arguments name: SOURCE (a path, `-`, a postgres:// URL,
/// docker-volume:NAME) or `-- COMMAND`, with the flags that refine it.
fn source_spec(args: &BackupArgs) -> Result<SourceSpec> {
    let mut spec = match (args.sources.as_slice(), args.command.split_first()) {
        ([], Some((program, rest))) => SourceSpec::command(program, rest.iter().cloned()),
        ([arg], None) => match arg.to_str() {
            Some(text) => text
                .parse()
                .map_err(|e: backup_core::Error| usage(e.to_string()))?,
            // Not UTF-8: only a path can be.
            None => SourceSpec::Path(arg.clone()),
        },
        ([_, _, ..], None) => SourceSpec::paths(args.sources.clone())
            .map_err(|e: backup_core::Error| usage(e.to_string()))?,
        _ => {
            return Err(usage(
                "give either SOURCE (or `-`) or `-- COMMAND`, not both",
            ));
        }
    };
    match spec.volume_mut() {
        Some(v) => v.stop_label.clone_from(&args.stop_label),
        None if args.stop_label.is_some() => {
            return Err(usage("--stop-label goes with docker-volume:NAME"));
        }
        None => {}
    }
    match spec.postgres_mut() {
        Some(pg) => {
            pg.globals = args.globals;
            pg.physical = args.physical;
            pg.row_counts = args.row_counts;
            pg.bin_dir.clone_from(&args.pg_bin);
            pg.container.clone_from(&args.container);
        }
        None if args.globals => return Err(usage("--globals goes with a postgres:// URL")),
        None if args.physical => return Err(usage("--physical goes with a postgres:// URL")),
        None if args.container.is_some() => {
            return Err(usage("--container goes with a postgres:// URL"));
        }
        None => {}
    }
    Ok(spec)
}

pub(crate) async fn backup(args: BackupArgs, out: Out) -> Result<cli::Status> {
    let spec = source_spec(&args)?;
    // A URL that does not parse is the command line's mistake.
    let source = spec.to_source().map_err(|e| match e {
        backup_core::Error::Postgres(pg::Error::Url { .. }) => usage(e.to_string()),
        e => e.into(),
    })?;
    let keys = keys::backup_keys(&args)?;
    // The repository before the default key: a missing one fails first.
    let repo = backup_repository(&args.repo, out.quiet).await?;
    let recipients = keys::recipients(keys)?;
    let mut pipeline = PipelineOptions::default().with_level(args.level);
    if let Some(threads) = args.threads {
        pipeline.workers = threads as usize;
    }
    if let Some(kib) = args.frame_size {
        pipeline.frame_size = kib as usize * 1024;
    }
    let bar = Bar::new(out.quiet || out.json, "backing up");
    // Only worth a walk of the tree when someone watches the bar.
    if let Some(total) = bar.is_visible().then(|| source.estimate_size()).flatten() {
        bar.set_total(total);
    }
    let mut opts = BackupOptions::new(recipients)
        .with_pipeline(pipeline)
        .with_skip_unreadable(args.skip_unreadable)
        .with_excludes(backup_core::Excludes {
            patterns: args.exclude.clone(),
            files: args.exclude_file.clone(),
            exclude_caches: args.exclude_caches,
            exclude_if_present: args.exclude_if_present.clone(),
            one_file_system: args.one_file_system,
        })
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
    report_new_backup(&result?, out, started)
}

/// Prints a new backup's id (or manifest) on stdout and a summary on
/// stderr; done with warnings when the backup recorded any.
fn report_new_backup(manifest: &Manifest, out: Out, started: Instant) -> Result<cli::Status> {
    if out.json {
        io::stdout().write_all(&manifest.to_json())?;
    } else {
        println!("{}", manifest.id);
    }
    if !out.quiet {
        eprintln!("{}", output::backup_summary(manifest, started.elapsed()));
    }
    if manifest.warnings.is_empty() {
        Ok(cli::Status::Success)
    } else {
        Ok(cli::Status::Warnings)
    }
}

pub(crate) async fn import(
    repo_args: &RepoArgs,
    file: &Path,
    name: Option<String>,
    keys: &DecryptArgs,
    out: Out,
) -> Result<cli::Status> {
    let repo = backup_repository(repo_args, out.quiet).await?;
    let ids = keys::decryptors(keys, "the file", false)?;
    let bar = Bar::new(out.quiet || out.json, "importing");
    let started = Instant::now();
    let result = repo
        .import(file, &ids, name, Arc::clone(&bar) as Arc<dyn Progress>)
        .await;
    bar.finish();
    report_new_backup(&result?, out, started)
}
