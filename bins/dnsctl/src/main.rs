//! `dnsctl`: parses arguments and runs one command (see the library).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = dnsctl::Cli::parse();
    let log = cli.log.clone();
    cli::Main::new()
        .hints(dnsctl::hint)
        .json(cli.output.json)
        .run(&log, dnsctl::run(cli))
}
