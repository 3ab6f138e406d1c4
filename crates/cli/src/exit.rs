//! Exit statuses, the same in every binary.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success (a check: everything agrees, no drift) |
//! | 1 | failure, or a check's negative answer (drift found, a server disagrees, a collector down) |
//! | 2 | usage error: the command was called wrongly (clap's own errors too) |

use std::fmt;
use std::process::ExitCode;

/// Success.
pub const SUCCESS: ExitCode = ExitCode::SUCCESS;
/// Failure, or a check's negative answer.
pub const FAILURE: ExitCode = ExitCode::FAILURE;

/// A usage error's status.
pub fn usage_status() -> ExitCode {
    ExitCode::from(2)
}

/// A mistake in how the command was called: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The numeric status for an error: 2 for a [`UsageError`] anywhere in
/// its chain, else 1.
pub fn status(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// The exit status for an error, as [`status`].
pub fn code(e: &anyhow::Error) -> ExitCode {
    ExitCode::from(status(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_even_with_context() {
        assert_eq!(status(&usage("bad flag")), 2);
        assert_eq!(status(&usage("bad flag").context("while parsing")), 2);
        assert_eq!(status(&anyhow::anyhow!("broken")), 1);
    }
}
