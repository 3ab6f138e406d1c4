//! `backupctl`: parses arguments, sets up logging and the runtime, runs one command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = backupctl::Cli::parse();
    // The daemon's log is its record of runs (for journald): info by default.
    let daemon = matches!(cli.command, backupctl::cli::Command::Daemon { .. });
    let verbose = if daemon {
        cli.verbose.max(1)
    } else {
        cli.verbose
    };
    backupctl::init_logging(verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(backupctl::run(cli));
    // Pipeline threads of an abandoned operation (an interrupted restore
    // drill) stop on their own once their channels close; do not wait long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(backupctl::exit_code(&e))
        }
    }
}
