//! `backupctl`: parses arguments and runs one command (see the library).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = backupctl::Cli::parse();
    // The daemon's log is its record of runs (for journald): info by default.
    let level = match cli.command {
        backupctl::args::Command::Daemon { .. } => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    let log = cli.log.clone();
    let json = cli.output.json;
    cli::Main::new()
        .default_level(level)
        .hints(backupctl::hint)
        .classify(backupctl::classify)
        .json(json)
        .run(&log, async move { Ok(backupctl::run(cli).await?.into()) })
}
