//! Progress reporting from long operations to whoever displays it.
//!
//! The library never prints. A binary passes an implementation (a progress
//! bar, a log line every few seconds); everything else passes nothing and
//! gets [`NoProgress`].

use std::fmt::Debug;
use std::sync::Arc;

/// Receives progress from backups, restores and verifies. Methods are called
/// from pipeline threads, often: keep them cheap (an atomic add).
pub trait Progress: Send + Sync + Debug {
    /// `bytes` more plaintext were read from the source (backup) or produced
    /// (restore, verify).
    fn plaintext(&self, bytes: u64) {
        let _ = bytes;
    }

    /// `bytes` more stored (encrypted) bytes were written (backup) or read
    /// (restore, verify).
    fn stored(&self, bytes: u64) {
        let _ = bytes;
    }

    /// A non-fatal problem, e.g. a file that changed while it was read. The
    /// same text is recorded in the manifest.
    fn warning(&self, message: &str) {
        let _ = message;
    }
}

/// Ignores all progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

impl<P: Progress + ?Sized> Progress for Arc<P> {
    fn plaintext(&self, bytes: u64) {
        (**self).plaintext(bytes);
    }
    fn stored(&self, bytes: u64) {
        (**self).stored(bytes);
    }
    fn warning(&self, message: &str) {
        (**self).warning(message);
    }
}
