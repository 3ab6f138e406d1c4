//! `prune`, `schedule`, `run`, `daemon` and `history`.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use backup_core::jobs::schedule::parse_zone;
use backup_core::jobs::{Config, Daemon, SystemClock, run_job};
use backup_core::retention::{Policy, PrunePlan};
use backup_core::{Outcome, RunKind, RunRecord};
use chrono::Utc;
use chrono_tz::Tz;

use crate::args::{PruneArgs, RepoArgs, ScheduleCommand};
use crate::{Out, repository, usage};

fn load(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

pub(crate) async fn prune(args: &PruneArgs, out: Out) -> Result<cli::Status> {
    let (repo, mut policy, mut zone, name) = match (&args.config, &args.job) {
        (Some(config), Some(job)) => {
            let config = load(config)?;
            let job = config.job(job)?;
            (
                open_job_repository(&job.repository).await?,
                job.retention,
                job.zone,
                Some(job.name.clone()),
            )
        }
        _ => (
            repository(&args.repo).await?,
            Policy::default(),
            backup_core::jobs::local_zone(),
            args.name.clone(),
        ),
    };
    for (flag, rule) in [
        (args.keep_last, &mut policy.last),
        (args.keep_hourly, &mut policy.hourly),
        (args.keep_daily, &mut policy.daily),
        (args.keep_weekly, &mut policy.weekly),
        (args.keep_monthly, &mut policy.monthly),
        (args.keep_yearly, &mut policy.yearly),
    ] {
        if let Some(keep) = flag {
            *rule = keep;
        }
    }
    if let Some(z) = &args.time_zone {
        zone = parse_zone(z).map_err(usage)?;
    }
    if policy.is_empty() {
        return Err(usage(
            "no retention rule: give --keep-last/-hourly/-daily/-weekly/-monthly/-yearly \
             (or --config with a job that has a retention policy)",
        ));
    }
    let plan = repo
        .prune(&policy, &zone, name.as_deref(), args.apply)
        .await?;
    if out.json {
        cli::print_json(&serde_json::json!({
            "applied": args.apply,
            "time_zone": zone.name(),
            "decisions": plan.decisions,
        }))?;
    } else {
        print!("{}", prune_text(&plan, &zone, args.apply));
    }
    Ok(cli::Status::Success)
}

/// A job's repository, which must exist.
async fn open_job_repository(location: &str) -> Result<backup_core::Repository> {
    let repo = backup_core::jobs::open_repository(location).await?;
    repo.check().await?;
    Ok(repo)
}

fn prune_text(plan: &PrunePlan, zone: &Tz, applied: bool) -> String {
    let mut out = String::new();
    for d in &plan.decisions {
        let why = if d.remove() {
            if applied { "removed" } else { "remove" }.to_owned()
        } else {
            let reasons: Vec<String> = d.keep.iter().map(ToString::to_string).collect();
            format!("keep ({})", reasons.join(", "))
        };
        out.push_str(&format!(
            "{}  {:<16}  {}  {why}\n",
            d.id,
            d.name,
            d.time.with_timezone(zone).format("%Y-%m-%d %H:%M %Z"),
        ));
    }
    let removed = plan.removals().count();
    out.push_str(&format!(
        "{} kept, {removed} {} (periods in {})\n",
        plan.decisions.len() - removed,
        if applied {
            "removed"
        } else {
            "to remove; dry run, --apply removes them"
        },
        zone.name()
    ));
    if let (Some(first), Some(last)) = (plan.wal.first(), plan.wal.last()) {
        out.push_str(&format!(
            "{} archived WAL file(s) no kept base backup needs ({first} .. {last}): {}\n",
            plan.wal.len(),
            if applied { "removed" } else { "to remove" }
        ));
    }
    out
}

pub(crate) fn schedule(cmd: &ScheduleCommand, out: Out) -> Result<cli::Status> {
    let ScheduleCommand::Next {
        config,
        job,
        count,
        after,
        drill,
    } = cmd;
    let config = load(config)?;
    let job = config.job(job)?;
    let schedule = if *drill {
        match &job.drill {
            Some(d) => &d.schedule,
            None => bail!("job {} has no drill", job.name),
        }
    } else {
        &job.schedule
    };
    let after = after.map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let runs: Vec<String> = schedule
        .upcoming(after)
        .take(*count)
        .map(|t| t.to_rfc3339())
        .collect();
    if out.json {
        cli::print_json(&serde_json::json!({
            "job": job.name,
            "time_zone": job.zone.name(),
            "runs": runs,
        }))?;
    } else {
        let mut stdout = io::stdout().lock();
        for t in runs {
            writeln!(stdout, "{t}")?;
        }
    }
    Ok(cli::Status::Success)
}

pub(crate) async fn run(job: &str, config: &Path, drill: bool, out: Out) -> Result<cli::Status> {
    let config = load(config)?;
    let job = config.job(job)?;
    job.check_secrets()
        .with_context(|| format!("job {}", job.name))?;
    let kind = if drill {
        if job.drill.is_none() {
            bail!("job {} has no drill in the config", job.name);
        }
        RunKind::Drill
    } else {
        RunKind::Full
    };
    let record = run_job(job, kind, &SystemClock, None, cli::shutdown_signal()).await;
    if out.json {
        cli::print_json(&record)?;
    } else {
        eprintln!("{}", record_line(&record, &job.zone));
        for w in &record.warnings {
            eprintln!("warning: {w}");
        }
    }
    // The record (printed above) is the answer; an error is a line for
    // people.
    if let Some(e) = &record.error {
        eprintln!("error: {e}");
    }
    Ok(match record.outcome {
        Outcome::Success if record.warnings.is_empty() => cli::Status::Success,
        Outcome::Success => cli::Status::Warnings,
        Outcome::Aborted => cli::Status::Interrupted,
        _ => cli::Status::Failure,
    })
}

pub(crate) async fn daemon(config_path: &Path) -> Result<cli::Status> {
    let config = load(config_path)?;
    if config.jobs.is_empty() {
        bail!("{} has no jobs", config_path.display());
    }
    config.check_secrets()?;
    eprintln!(
        "backupctl daemon: {} job(s) from {}",
        config.jobs.len(),
        config_path.display()
    );
    let daemon = Daemon::new(config, Arc::new(SystemClock));
    daemon.run(cli::shutdown_signal()).await?;
    eprintln!("backupctl daemon: stopped");
    Ok(cli::Status::Success)
}

pub(crate) async fn history(
    config: Option<&Path>,
    job: Option<&str>,
    last: Option<usize>,
    repo_args: &RepoArgs,
    out: Out,
) -> Result<cli::Status> {
    let mut records: Vec<RunRecord> = Vec::new();
    let zone;
    match config {
        Some(path) => {
            let config = load(path)?;
            let mut locations: Vec<&str> = config
                .jobs
                .values()
                .filter(|j| job.is_none_or(|n| j.name == n))
                .map(|j| j.repository.as_str())
                .collect();
            if let Some(name) = job {
                config.job(name)?;
            }
            locations.sort_unstable();
            locations.dedup();
            for location in locations {
                let repo = open_job_repository(location).await?;
                records.extend(
                    repo.history(job)
                        .await
                        .with_context(|| format!("reading the history in {location}"))?,
                );
            }
            zone = config
                .jobs
                .values()
                .next()
                .map_or_else(backup_core::jobs::local_zone, |j| j.zone);
        }
        None => {
            records = repository(repo_args).await?.history(job).await?;
            zone = backup_core::jobs::local_zone();
        }
    }
    records.sort_by_key(|r| r.started_at);
    if let Some(n) = last {
        let skip = records.len().saturating_sub(n);
        records.drain(..skip);
    }
    if out.json {
        cli::print_json(&records)?;
    } else if records.is_empty() {
        eprintln!("no runs recorded");
    } else {
        let mut stdout = io::stdout().lock();
        for r in &records {
            writeln!(stdout, "{}", record_line(r, &zone))?;
        }
    }
    Ok(cli::Status::Success)
}

/// One line about a run: time, job, kind, outcome, backup, size, duration,
/// error.
fn record_line(r: &RunRecord, zone: &Tz) -> String {
    let mut line = format!(
        "{}  {:<16} {:<5} {:<7}",
        r.started_at
            .with_timezone(zone)
            .format("%Y-%m-%d %H:%M:%S %Z"),
        r.job,
        r.kind,
        r.outcome,
    );
    if let Some(id) = &r.backup {
        line.push_str(&format!("  {id}"));
    }
    if let Some(sizes) = &r.sizes {
        line.push_str(&format!("  {}", cli::format_size(sizes.stored)));
    }
    line.push_str(&format!("  {:.1}s", r.duration_seconds()));
    if r.pruned > 0 {
        line.push_str(&format!("  pruned {}", r.pruned));
    }
    if let Some(e) = &r.error {
        line.push_str(&format!("  error: {e}"));
    }
    line
}
