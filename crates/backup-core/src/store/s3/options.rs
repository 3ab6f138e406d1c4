//! How an [`S3Store`](super::S3Store) talks to its bucket.

use std::time::Duration;

use crate::error::{Error, Result};

/// The smallest part S3 accepts (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// The most parts one multipart upload may have.
pub(crate) const MAX_PARTS: i32 = 10_000;
/// Attempts per request, first try included.
const DEFAULT_ATTEMPTS: u32 = 10;

/// How an [`S3Store`](super::S3Store) talks to its bucket.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Size of every multipart part but the last (default 16 MiB, at least
    /// 5 MiB). Objects up to this size are sent with one `PutObject`.
    pub part_size: usize,
    /// Parts uploaded (and ranges downloaded) at the same time (default 4).
    pub concurrency: usize,
    /// Path-style addressing (`endpoint/bucket/key`). `None` (the default)
    /// uses it exactly when a custom endpoint is configured, as Garage and
    /// MinIO need; virtual-hosted style (`bucket.endpoint/key`) otherwise.
    pub path_style: Option<bool>,
    /// Attempts per request, the first included (default 10), with
    /// exponential backoff for throttling, 5xx responses, timeouts and
    /// dropped connections.
    pub max_attempts: u32,
    /// Longest one attempt of one request may take before it is abandoned
    /// and retried (default 5 minutes: a 16 MiB part at 60 KiB/s), so a
    /// connection that goes silent never hangs a backup.
    pub attempt_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            part_size: 16 << 20,
            concurrency: 4,
            path_style: None,
            max_attempts: DEFAULT_ATTEMPTS,
            attempt_timeout: Duration::from_secs(300),
        }
    }
}

impl S3Options {
    /// Checks the settings are in range.
    pub(crate) fn check(&self) -> Result<()> {
        if self.part_size < MIN_PART_SIZE {
            return Err(Error::InvalidOption {
                option: "S3 part size",
                problem: format!(
                    "{} is below the 5 MiB minimum S3 accepts",
                    settings::size::format(self.part_size as u64)
                ),
            });
        }
        if self.concurrency == 0 || self.max_attempts == 0 {
            return Err(Error::InvalidOption {
                option: "S3 concurrency",
                problem: "concurrency and attempts must be at least 1".into(),
            });
        }
        Ok(())
    }
}
