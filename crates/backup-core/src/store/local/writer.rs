//! Writing an object file without flooding the page cache or the final fsync.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{Advice, fadvise};

/// Writeback is started for every this many bytes written.
const KICK: u64 = 8 << 20;

/// Appends to a new file with ordinary buffered writes, and every 8 MiB asks
/// the kernel (`posix_fadvise(DONTNEED)`) to start writing that range back
/// and to drop the ranges already on disk from the page cache.
///
/// The pipeline therefore never waits for the disk while it writes (unlike
/// `O_DIRECT`, whose synchronous writes stalled it whenever the disk was
/// busy), the final fsync finds only the last few MiB dirty, and a backup
/// does not evict the page cache of the services it protects.
pub(super) struct ObjectWriter {
    file: File,
    written: u64,
    /// Writeback has been started for `..kicked`.
    kicked: u64,
    /// Pages of `..dropped` have been dropped from the cache.
    dropped: u64,
}

impl ObjectWriter {
    /// Creates `path`, which must not exist.
    pub(super) fn create(path: &Path) -> io::Result<Self> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)?;
        Ok(ObjectWriter {
            file,
            written: 0,
            kicked: 0,
            dropped: 0,
        })
    }

    /// Appends `data`.
    pub(super) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        if self.written - self.kicked >= KICK {
            // The previous range has had a whole round to reach the disk:
            // drop what is clean. Then start writeback of the newest range.
            self.advise(self.dropped, self.kicked);
            self.dropped = self.kicked;
            self.advise(self.kicked, self.written);
            self.kicked = self.written;
        }
        Ok(())
    }

    /// Hints only: a filesystem that ignores them is still correct.
    fn advise(&self, from: u64, to: u64) {
        if let Some(len) = std::num::NonZeroU64::new(to - from) {
            let _ = fadvise(&self.file, from, Some(len), Advice::DontNeed);
        }
    }

    /// Returns the file (still to be fsynced by the caller) and its size.
    pub(super) fn finish(self) -> io::Result<(File, u64)> {
        Ok((self.file, self.written))
    }

    /// After the fsync: drops the rest of the file from the page cache.
    pub(super) fn forget(file: &File) {
        let _ = fadvise(file, 0, None, Advice::DontNeed);
    }
}
