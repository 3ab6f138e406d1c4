//! `limitsctl`: container limits planned, applied and checked for drift.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use limits::containers::Engine;
use limitsctl::{Source, rules, table};

/// Container memory, CPU and PIDs limits declared once — in a policy file
/// or a compose file's deploy.resources — planned against the running
/// containers, applied live through the Docker Engine's update API
/// (no restart), re-read and confirmed, and checked for drift.
///
/// Sizes are written 512m, 1.5g, 256MiB or a byte count, as in compose
/// files; logs go to standard error (-v, -q, --log-format json,
/// SHIPSHAPE_LOG).
///
/// Exit status: 0 success (drift: none); 1 failure (apply: a change did
/// not hold); 2 usage error; 4 drift found. With --json a failure prints
/// {"error": {"kind", "status", "message", "hint"}} on standard output.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: cli::LogArgs,
    #[command(flatten)]
    output: cli::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Shows what apply would change: container, setting, current, desired.
    Plan(Common),
    /// Applies the limits live, then re-reads each container to confirm.
    Apply {
        #[command(flatten)]
        common: Common,
        /// Apply a memory limit below a container's current usage (the
        /// kernel may OOM-kill it).
        #[arg(long)]
        force: bool,
    },
    /// Exits 4 when any container's limits differ from the file (for cron
    /// and CI), naming each container and setting.
    Drift(Common),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Files {
    /// A policy file (TOML, [[container]] entries).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// A compose file; its services' deploy.resources (and mem_limit, cpus).
    #[arg(long)]
    compose: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct Common {
    #[command(flatten)]
    files: Files,
}

impl Common {
    fn source(&self) -> Source<'_> {
        match (&self.files.policy, &self.files.compose) {
            (Some(p), _) => Source::Policy(p),
            (None, Some(c)) => Source::Compose(c),
            (None, None) => unreachable!("clap requires one of --policy and --compose"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.clone();
    cli::Main::new()
        .hints(limitsctl::hint)
        .json(cli.output.json)
        .run(&log, run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = match &cli.command {
        Command::Plan(c) | Command::Drift(c) | Command::Apply { common: c, .. } => c,
    };
    let rules = rules(common.source())?;
    let engine = Engine::connect().await?;
    let json = cli.output.json;
    match cli.command {
        Command::Plan(_) | Command::Drift(_) => {
            let drift = matches!(cli.command, Command::Drift(_));
            let changes = engine.plan(&rules).await?;
            if json {
                cli::print_json(&changes)?;
            } else if changes.is_empty() {
                println!("no changes: every container has its declared limits");
            } else {
                print!("{}", table(&changes));
            }
            Ok(if drift && !changes.is_empty() {
                cli::exit::check_failed()
            } else {
                cli::exit::SUCCESS
            })
        }
        Command::Apply { force, .. } => {
            let outcomes = engine.apply(&rules, force).await?;
            let held = outcomes.iter().all(|o| o.remaining.is_empty());
            if json {
                cli::print_json(&outcomes)?;
            } else if outcomes.is_empty() {
                println!("no changes: every container has its declared limits");
            } else {
                for o in &outcomes {
                    for c in &o.applied {
                        let ok = if o.remaining.iter().any(|r| r.setting == c.setting) {
                            "NOT CONFIRMED"
                        } else {
                            "confirmed"
                        };
                        println!(
                            "{}: {} {} -> {} ({ok})",
                            o.container,
                            c.setting,
                            c.current_text(),
                            c.desired_text()
                        );
                    }
                }
            }
            Ok(if held {
                cli::exit::SUCCESS
            } else {
                cli::exit::FAILURE
            })
        }
    }
}
