//! Logging to standard error, set up one way in every binary.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The variable every binary reads its log filter from, in `tracing`'s
/// syntax: `debug`, `warn,backup_core=debug`.
pub const LOG_VAR: &str = "SHIPSHAPE_LOG";

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for journald, Loki and other collectors.
    Json,
}

/// The logging flags every binary takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log more on standard error (-v info, -vv debug); SHIPSHAPE_LOG
    /// (e.g. `debug` or `warn,backup_core=debug`) overrides both flags.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print nothing but results and errors: no progress, no summaries,
    /// only error-level log lines.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// How log lines are written: text for people, json for journald,
    /// Loki and other collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "SHIPSHAPE_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// The filter these flags ask for, given the binary's default level.
    pub fn filter(&self, default: tracing::Level) -> String {
        let level = match (self.quiet, self.verbose) {
            (true, _) => tracing::Level::ERROR,
            (false, 0) => default,
            (false, 1) => default.max(tracing::Level::INFO),
            (false, _) => tracing::Level::DEBUG,
        };
        level.to_string().to_ascii_lowercase()
    }

    /// Installs the subscriber (once; later calls do nothing).
    pub fn init(&self, default: tracing::Level) {
        let filter = EnvFilter::try_from_env(LOG_VAR)
            .unwrap_or_else(|_| EnvFilter::new(self.filter(default)));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false)
                .try_init(),
            LogFormat::Json => builder.json().with_current_span(false).try_init(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_pick_the_level() {
        let args = |verbose, quiet| LogArgs {
            verbose,
            quiet,
            log_format: LogFormat::Text,
        };
        assert_eq!(args(0, false).filter(tracing::Level::WARN), "warn");
        assert_eq!(args(1, false).filter(tracing::Level::WARN), "info");
        assert_eq!(args(2, false).filter(tracing::Level::WARN), "debug");
        assert_eq!(args(0, true).filter(tracing::Level::INFO), "error");
        assert_eq!(args(0, false).filter(tracing::Level::INFO), "info");
        assert_eq!(args(1, false).filter(tracing::Level::INFO), "info");
    }
}
