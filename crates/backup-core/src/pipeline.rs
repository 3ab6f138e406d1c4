//! The streaming pipelines: source -> zstd -> age -> store for backups, and
//! store -> age -> zstd -> sink for restores and verifies.
//!
//! Each direction runs as a few stages on their own threads, connected by
//! bounded channels, so every stage works in parallel and a slow stage
//! back-pressures the ones before it. Memory therefore depends on the
//! settings below, never on the size of the input. When a stage fails, the
//! ones after it see their input end without the end-of-stream marker and
//! stop; the ones before it see their output closed and stop. The first
//! failure upstream is the one reported.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender};

use crate::error::{Error, Result};
pub(crate) use crate::error::{recover, unwrap_io, wrap};

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod frames;
pub(crate) mod ranged;
pub(crate) mod seal;

/// Size of the blocks handed between pipeline threads.
pub(crate) const BLOCK: usize = 256 << 10;
/// Blocks queued between two pipeline threads.
pub(crate) const QUEUE: usize = 2;

/// Tuning of the backup pipeline. The defaults suit a small server.
///
/// Peak memory of a backup is about
/// `(2 * (workers + 2) + 3) * frame_size + workers * 1.3 MiB` (frames being
/// read, compressed, sealed and hashed; zstd contexts at level 3)
/// `+ 6 * chunk_size` (toward the store and the hash thread) `+ 2 MiB`
/// (read-ahead of small files, read buffers, age), whatever the size of the
/// input: about 15 MiB of buffers with the defaults on two cores. With the
/// program's code, `backupctl backup` peaks at 28–30 MiB of RSS on a 1 GiB
/// and a 4 GiB tree (`benches/compare.sh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineOptions {
    /// zstd compression level, 1 (fastest) to 22. Default 3, like `zstd`.
    pub level: i32,
    /// Threads compressing in parallel. Default: the number of CPUs.
    pub workers: usize,
    /// Bytes of plaintext per zstd frame; frames are compressed
    /// independently, in parallel. Larger frames compress a little better
    /// and use more memory. Default 512 KiB (see [`PipelineOptions::with_level`]).
    pub frame_size: usize,
    /// Bytes per chunk handed to the store. Default 768 KiB: each chunk
    /// wakes the store's write thread and the hash thread; 256 KiB chunks
    /// used 2 MiB less memory, but their wake-ups cost ~4% of a local
    /// backup's wall time.
    pub chunk_size: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            level: 3,
            workers: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            frame_size: 512 << 10,
            chunk_size: 768 << 10,
        }
    }
}

impl PipelineOptions {
    /// Sets the zstd level and a frame size suited to it: 512 KiB up to
    /// level 9 (on the benchmark corpus, 0.03% larger output than zstd's
    /// 8 MiB multithreaded jobs), 2 MiB above, where zstd's match window is
    /// larger and longer frames pay off.
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self.frame_size = if level <= 9 { 512 << 10 } else { 2 << 20 };
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let levels = zstd::compression_level_range();
        if !levels.contains(&self.level) {
            return Err(Error::InvalidOption {
                option: "zstd level",
                problem: format!(
                    "{} is out of range ({}..={})",
                    self.level,
                    levels.start(),
                    levels.end()
                ),
            });
        }
        if !(64 << 10..=256 << 20).contains(&self.frame_size) {
            return Err(Error::InvalidOption {
                option: "zstd frame size",
                problem: "must be between 64 KiB and 256 MiB".into(),
            });
        }
        if self.chunk_size == 0 || self.workers == 0 {
            return Err(Error::InvalidOption {
                option: "pipeline",
                problem: "chunk size and workers must not be zero".into(),
            });
        }
        Ok(())
    }
}

/// What flows between pipeline threads.
pub(crate) enum Block {
    Data(Vec<u8>),
    /// The stream is complete. A channel that closes without it means the
    /// stage before failed.
    End,
}

/// A stage's output was closed by the stage after it (which failed).
pub(crate) fn downstream_closed() -> Error {
    Error::Interrupted("a later stage stopped".into())
}

/// A stage's input ended without the end marker (the stage before failed).
pub(crate) fn upstream_failed() -> Error {
    Error::Interrupted("an earlier stage stopped".into())
}

/// Picks the error to report from stages listed upstream first: the first
/// real failure, else the first error of any kind, else success.
pub(crate) fn first_failure<const N: usize>(results: [Result<()>; N]) -> Result<()> {
    let mut fallback = None;
    for r in results {
        match r {
            Ok(()) => {}
            Err(Error::Interrupted(m)) => {
                fallback.get_or_insert(Error::Interrupted(m));
            }
            Err(e) => return Err(e),
        }
    }
    fallback.map_or(Ok(()), Err)
}

/// Sizes and digests of one pass through the pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub sizes: crate::manifest::Sizes,
    pub digests: crate::manifest::Digests,
}

impl Measured {
    pub(crate) fn new(
        (raw, plaintext): (u64, crate::manifest::Sha256),
        compressed: u64,
        (stored, stored_sha): (u64, crate::manifest::Sha256),
    ) -> Self {
        Measured {
            sizes: crate::manifest::Sizes {
                raw,
                compressed,
                stored,
            },
            digests: crate::manifest::Digests {
                plaintext,
                stored: stored_sha,
            },
        }
    }
}

/// Separates a stage's value from its status, so statuses can be ranked
/// with [`first_failure`].
pub(crate) fn split<T>(r: Result<T>) -> (Option<T>, Result<()>) {
    match r {
        Ok(v) => (Some(v), Ok(())),
        Err(e) => (None, Err(e)),
    }
}

/// Sends blocks to the next thread.
pub(crate) struct BlockSender {
    tx: SyncSender<Block>,
}

impl BlockSender {
    pub(crate) fn send(&self, data: Vec<u8>) -> Result<()> {
        self.tx
            .send(Block::Data(data))
            .map_err(|_| downstream_closed())
    }

    /// Marks the stream complete. Dropping a sender without calling this
    /// tells the receiver that the stream failed.
    pub(crate) fn end(self) -> Result<()> {
        self.tx.send(Block::End).map_err(|_| downstream_closed())
    }
}

/// A bounded channel of blocks between two threads.
pub(crate) fn block_channel() -> (BlockSender, BlockReader) {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    (
        BlockSender { tx },
        BlockReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        },
    )
}

/// Reads the blocks sent by the previous thread as a byte stream. Errors
/// with [`upstream_failed`] when the sender went away without `end`.
pub(crate) struct BlockReader {
    rx: Receiver<Block>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl BufRead for BlockReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.cur.len() && !self.ended {
            match self.rx.recv() {
                Ok(Block::Data(data)) => {
                    self.cur = data;
                    self.pos = 0;
                }
                Ok(Block::End) => self.ended = true,
                Err(_) => return Err(wrap(upstream_failed())),
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

/// `Read::read` for a reader whose data lives in its `BufRead` buffer.
pub(crate) fn read_buffered(r: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let available = r.fill_buf()?;
    let n = available.len().min(buf.len());
    buf[..n].copy_from_slice(&available[..n]);
    r.consume(n);
    Ok(n)
}

/// Fills `buf` from `r` as far as possible; returns the bytes read (less
/// than `buf.len()` only at the end of the stream).
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Runs `f` on the blocking thread pool and waits for it.
pub(crate) async fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Interrupted(format!("pipeline thread failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_reader_reports_a_missing_end() {
        let (tx, mut rx) = block_channel();
        tx.send(b"abc".to_vec()).expect("send");
        drop(tx);
        let mut out = Vec::new();
        let err = rx.read_to_end(&mut out).expect_err("no end marker");
        assert!(matches!(unwrap_io(err), Error::Interrupted(_)));
        assert_eq!(out, b"abc");
    }

    #[test]
    fn first_real_failure_wins() {
        let r = first_failure([
            Err(upstream_failed()),
            Err(Error::Encrypt("real".into())),
            Ok(()),
        ]);
        assert!(matches!(r, Err(Error::Encrypt(_))));
        assert!(first_failure([Ok(()), Ok(())]).is_ok());
        assert!(matches!(
            first_failure([Ok(()), Err(downstream_closed())]),
            Err(Error::Interrupted(_))
        ));
    }
}
