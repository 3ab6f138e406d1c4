//! What Shipshape's four binaries (`backupctl`, `metricsd`, `limitsctl`,
//! `dnsctl`) share, so that a user who learned one knows all four:
//!
//! - start-up: [`Main`] builds the runtime, sets up logging, runs the
//!   command and turns its result into an exit status;
//! - exit statuses ([`exit`]): 0 success, 1 failure, 2 a usage error,
//!   3 done with warnings, 4 a check's negative answer (drift found, a
//!   server that disagrees), 10 no repository, 12 wrong key, 130
//!   interrupted; with `--json` ([`OutputArgs`]) a failure is one JSON
//!   object with its kind;
//! - logging ([`LogArgs`]): `-v`/`-q`, `--log-format text|json`, and one
//!   variable, `SHIPSHAPE_LOG`, with `tracing`'s filter syntax;
//! - tables ([`Table`]) that line up whatever the characters;
//! - durations and sizes written one way ([`parse_duration`],
//!   [`parse_size`], [`format_size`]), the same grammar as every config
//!   file ([`settings`]).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     log: cli::LogArgs,
//!     #[arg(long, value_parser = cli::parse_duration)]
//!     timeout: std::time::Duration,
//! }
//!
//! fn main() -> ExitCode {
//!     let args = Args::parse();
//!     let log = args.log.clone();
//!     cli::Main::new().run(&log, async move {
//!         tracing::info!(timeout = ?args.timeout, "working");
//!         Ok(cli::exit::SUCCESS)
//!     })
//! }
//! ```

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

pub mod exit;
mod log;
mod table;

pub use exit::{Interrupted, Status, UsageError, usage};
pub use log::{LOG_VAR, LogArgs, LogFormat};
pub use table::Table;

/// How a binary starts: logging first, then a multi-threaded runtime
/// with two workers, then the command.
#[derive(Debug, Clone)]
pub struct Main {
    default_level: tracing::Level,
    max_blocking_threads: Option<usize>,
    hint: Option<fn(&anyhow::Error) -> Option<String>>,
    classify: Option<fn(&anyhow::Error) -> Option<Status>>,
    json: bool,
}

impl Default for Main {
    fn default() -> Self {
        Main::new()
    }
}

impl Main {
    /// Warnings and errors logged by default; the runtime's defaults.
    pub fn new() -> Self {
        Main {
            default_level: tracing::Level::WARN,
            max_blocking_threads: None,
            hint: None,
            classify: None,
            json: false,
        }
    }

    /// The level logged when neither `-v`/`-q` nor `SHIPSHAPE_LOG` says
    /// otherwise (a daemon's log is its record, so daemons log `INFO`).
    #[must_use]
    pub fn default_level(mut self, level: tracing::Level) -> Self {
        self.default_level = level;
        self
    }

    /// Caps the runtime's blocking threads (each holds a stack: a
    /// long-running server keeps its memory bounded with this).
    #[must_use]
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = Some(n);
        self
    }

    /// Adds the binary's remedies to errors: for an error a flag can fix
    /// (a library never names the binary's flags), `hint` says which, and
    /// it is printed as `hint: ...` under the error.
    #[must_use]
    pub fn hints(mut self, hint: fn(&anyhow::Error) -> Option<String>) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Gives errors the binary's libraries know their own exit status
    /// (a repository that is missing: 10, a wrong key: 12); the rest are
    /// classified as [`exit::status_of`] says.
    #[must_use]
    pub fn classify(mut self, classify: fn(&anyhow::Error) -> Option<Status>) -> Self {
        self.classify = Some(classify);
        self
    }

    /// Reports a failure as one JSON object on standard output (as well
    /// as the text on standard error): what `--json` asks for.
    #[must_use]
    pub fn json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }

    /// Sets up logging, runs `command` on a new runtime and returns its
    /// exit status; an error is printed as `error: ...` on standard error
    /// (with a `hint: ...` line when [`hints`](Self::hints) has one), and
    /// with [`json`](Self::json) as [`exit::error_json`] on standard
    /// output, with the status [`exit::status_of`] gives it.
    pub fn run<F>(self, log: &LogArgs, command: F) -> ExitCode
    where
        F: Future<Output = anyhow::Result<ExitCode>>,
    {
        log.init(self.default_level);
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2).enable_all();
        if let Some(n) = self.max_blocking_threads {
            builder.max_blocking_threads(n);
        }
        let runtime = match builder.build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return exit::FAILURE;
            }
        };
        let result = runtime.block_on(command);
        // Threads of abandoned work (an interrupted restore drill) stop on
        // their own once their channels close; do not wait long for them.
        runtime.shutdown_timeout(Duration::from_secs(5));
        match result {
            Ok(code) => code,
            Err(e) => {
                let status = exit::status_of(&e, self.classify);
                let hint = self.hint.and_then(|h| h(&e));
                eprintln!("error: {e:#}");
                if let Some(hint) = &hint {
                    eprintln!("hint: {hint}");
                }
                if self.json {
                    // Standard output may be gone; the text above stands.
                    let _ = print_json(&exit::error_json(status, &e, hint.as_deref()));
                }
                status.into()
            }
        }
    }
}

/// The output flag every binary takes: `--json`, on every command.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Print results as JSON on standard output (pretty-printed; nothing
    /// else goes there); a failure prints one object
    /// `{"error": {"kind", "status", "message", "hint"}}`.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Parses a duration flag (`90s`, `5min`, `1h30m`, `7d`): humantime's
/// grammar, as in every config file.
///
/// # Errors
///
/// When the text is not a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    settings::duration::parse(text)
}

/// Parses a size flag (`16MiB`, `512m`, `1.5g`, `1048576`), as in every
/// config file.
///
/// # Errors
///
/// When the text is not a size.
pub fn parse_size(text: &str) -> Result<u64, String> {
    settings::size::parse(text)
}

/// A size for people, in binary units with two decimals: `1.50 MiB`,
/// `512 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// A duration for people, as the duration flags read it (`1h 30m 5s`),
/// rounded to whole seconds above ten seconds and to milliseconds below.
pub fn format_duration(d: Duration) -> String {
    let rounded = if d >= Duration::from_secs(10) {
        Duration::from_secs(d.as_secs())
    } else {
        Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    settings::duration::format(rounded)
}

/// Resolves when the process is asked to stop: SIGTERM or Ctrl-C
/// (SIGINT).
pub async fn shutdown_signal() {
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

/// Prints `value` as pretty JSON on standard output, the one JSON style
/// of every `--json`.
///
/// # Errors
///
/// When it cannot be serialized or standard output is closed.
pub fn print_json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_for_people() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.50 KiB");
        assert_eq!(format_size(16 << 20), "16.00 MiB");
        assert_eq!(format_duration(Duration::from_millis(5_400_250)), "1h 30m");
        assert_eq!(format_duration(Duration::from_millis(1250)), "1s 250ms");
        let d = Duration::from_secs(5405);
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
