//! The values every Shipshape setting is written in, parsed one way
//! everywhere: in the backup jobs' config, metricsd's config, policy and
//! records files, command-line flags and the C ABI's JSON options.
//!
//! - [`duration`]: humantime's grammar — `90s`, `5min`, `1h30m`, `7d`,
//!   `0`.
//! - [`size`]: bytes with binary units — `512m`, `1.5GiB`, `16MiB`,
//!   `1048576`.
//! - [`secret`]: a secret named by where it lives (an environment
//!   variable or a private file), read when it is needed and never shown.
//!
//! ```
//! use std::time::Duration;
//!
//! assert_eq!(settings::duration::parse("1h30m"), Ok(Duration::from_secs(5400)));
//! assert_eq!(settings::size::parse("16MiB"), Ok(16 << 20));
//!
//! #[derive(serde::Deserialize)]
//! struct Job {
//!     #[serde(with = "settings::duration::serde")]
//!     timeout: Duration,
//! }
//! let job: Job = toml::from_str("timeout = '5min'").unwrap();
//! assert_eq!(job.timeout, Duration::from_secs(300));
//! ```

pub mod duration;
pub mod secret;
pub mod size;

/// Re-exported so callers can read a [`Secret`] without naming `secrecy`.
pub use secrecy::{ExposeSecret, SecretString};
pub use secret::{Secret, SecretError};

/// Longest error message [`excerpt`] lets through.
pub const MAX_MESSAGE: usize = 600;

/// A parser's error message cut to [`MAX_MESSAGE`] bytes (at a character
/// boundary): parsers quote the offending line, and a 10 MB line must not
/// come back whole in a log or on a terminal.
///
/// ```
/// let long = format!("bad line: {}", "x".repeat(10_000));
/// let short = settings::excerpt(&long);
/// assert!(short.len() < 700 && short.ends_with("bytes more)"));
/// ```
pub fn excerpt(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &message[..end], message.len() - end)
}
