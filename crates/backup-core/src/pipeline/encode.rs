//! Backup direction: source -> zstd -> age -> store.
//!
//! Three stages run at once:
//!
//! 1. *read* (a pipeline thread): the source writes into [`PlainSink`], which
//!    cuts the plaintext into frames for the zstd workers
//!    ([`frames`](super::frames));
//! 2. *seal* (a pipeline thread): takes the compressed frames in order,
//!    age-encrypts the compressed bytes and cuts the result into chunks for
//!    the store, while two threads beside it hash the plaintext and the
//!    chunks;
//! 3. *store* (the caller's task): [`Store::put`] consumes the chunks.
//!
//! The store sees the end of the stream only after every stage has finished
//! successfully; any failure ends the stream with an error instead, so the
//! store discards the partial object.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256 as Hasher};
use tokio::sync::mpsc;

use super::frames::{self, FrameReader, FrameWriter, Plaintext};
use super::seal::Sealer;
use super::{
    Measured, PipelineOptions, QUEUE, downstream_closed, first_failure, on_thread, split,
    unwrap_io, upstream_failed, wrap,
};
use crate::error::{Error, Result};
use crate::keys::Recipients;
use crate::manifest::{Sha256, SourceInfo};
use crate::progress::Progress;
use crate::sink::Sink;
use crate::source::{ReadOptions, Source};
use crate::store::{ByteStream, Store};

/// How the source is read.
pub(crate) struct Reading {
    /// Skip unreadable files with a warning.
    pub skip_unreadable: bool,
    /// For directories: the file index (and incremental decisions).
    pub tracker: Option<Arc<crate::incremental::Tracker>>,
    /// For directories: what is left out.
    pub filter: crate::source::Filter,
    /// For directories: the index of entries being written.
    pub index: Option<Arc<crate::index::IndexWriter>>,
}

/// The outcome of a successful encode.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub info: SourceInfo,
    pub measured: Measured,
    pub warnings: Vec<String>,
    /// The compressed size of every zstd frame, in order.
    pub frames: Vec<u32>,
}

/// Streams `source` through the pipeline into `store` under `key`.
pub(crate) async fn encode(
    store: &dyn Store,
    key: &str,
    source: Source,
    recipients: Recipients,
    opts: &PipelineOptions,
    reading: Reading,
    progress: Arc<dyn Progress>,
) -> Result<Encoded> {
    let Reading {
        skip_unreadable,
        tracker,
        filter,
        index,
    } = reading;
    opts.check()?;
    let (chunk_tx, chunk_rx) = mpsc::channel::<Chunk>(QUEUE);

    let (frames_tx, frames_rx) = frames::start(opts.level, opts.workers, opts.frame_size, QUEUE)?;
    let read_progress = Arc::clone(&progress);
    let read = on_thread(move || {
        let warnings = Mutex::new(Vec::new());
        let warn = |message: String| {
            tracing::warn!("{message}");
            read_progress.warning(&message);
            warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(message);
        };
        let mut plain = PlainSink {
            buf: frames_tx.buffer(),
            frames: frames_tx,
            filled: 0,
            bytes: 0,
            progress: read_progress.as_ref(),
        };
        let read_opts = ReadOptions {
            skip_unreadable,
            warn: &warn,
            tracker: tracker.as_deref(),
            filter: &filter,
            index: index.as_deref(),
        };
        let info = source.produce(&mut plain, &read_opts)?;
        let raw = plain.finish()?;
        if let Some(tracker) = &tracker {
            tracker.finish_walk()?;
        }
        let warnings = warnings.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok((info, raw, warnings))
    });

    let seal_progress = Arc::clone(&progress);
    let chunk_size = opts.chunk_size;
    let seal = on_thread(move || {
        // Each hash is taken on a thread of its own: with encryption, one
        // thread would be the pipeline's bottleneck wherever the data does
        // not compress.
        let (plain_tx, plain_rx) = sync_channel::<Hashed>(1);
        let (stored_tx, stored_rx) = sync_channel::<Hashed>(1);
        let sink = StoredSink {
            tx: chunk_tx,
            hash: stored_tx,
            buf: BytesMut::with_capacity(chunk_size),
            chunk_size,
            bytes: 0,
            progress: seal_progress.as_ref(),
        };
        let age = Sealer::new(&recipients, sink)?;
        std::thread::scope(|scope| {
            let hasher = |rx| {
                std::thread::Builder::new()
                    .name("shipshape-hash".into())
                    .spawn_scoped(scope, move || hash(rx))
                    .map_err(|e| Error::Interrupted(format!("cannot start a hash thread: {e}")))
            };
            let (plain_hasher, stored_hasher) = (hasher(plain_rx)?, hasher(stored_rx)?);
            let sealed = seal(age, frames_rx, plain_tx);
            let joined = |h: std::thread::ScopedJoinHandle<'_, Sha256>| {
                h.join()
                    .map_err(|_| Error::Interrupted("a hash thread panicked".into()))
            };
            let (plain, stored_sha) = (joined(plain_hasher)?, joined(stored_hasher)?);
            let (compressed, stored, frames) = sealed?;
            Ok((plain, compressed, stored, stored_sha, frames))
        })
    });

    let put = store.put(key, chunk_stream(chunk_rx));
    let (read, seal, put) = tokio::join!(read, seal, put);
    let (read, read_status) = split(read);
    let (seal, seal_status) = split(seal);
    let (_, put_status) = split(put);
    first_failure([read_status, seal_status, put_status])?;
    let (Some((info, raw, warnings)), Some((plaintext, compressed, stored, stored_sha, frames))) =
        (read, seal)
    else {
        return Err(Error::Interrupted(
            "a pipeline stage returned no result".into(),
        ));
    };
    Ok(Encoded {
        info,
        measured: Measured::new((raw, plaintext), compressed, (stored, stored_sha)),
        warnings,
        frames,
    })
}

/// Encrypts the compressed frames in order and hands each frame's plaintext
/// to the hash thread. Returns the compressed and the stored size, and
/// each frame's compressed size (4 bytes per frame: compact).
fn seal(
    mut age: Sealer<StoredSink<'_>>,
    mut frames: FrameReader,
    hash: SyncSender<Hashed>,
) -> Result<(u64, u64, Vec<u32>)> {
    let mut compressed = 0u64;
    let mut sizes = Vec::new();
    while let Some(frame) = frames.next()? {
        age.write_all(frame.compressed()).map_err(unwrap_io)?;
        compressed += frame.compressed().len() as u64;
        sizes.push(u32::try_from(frame.compressed().len()).unwrap_or(u32::MAX));
        hash.send(Hashed::Plain(frames.keep_plain(frame)))
            .map_err(|_| hash_stopped())?;
    }
    let stored = age.finish().map_err(unwrap_io)?.finish()?;
    Ok((compressed, stored, sizes))
}

/// Bytes for a hash thread, in stream order.
enum Hashed {
    Plain(Plaintext),
    Stored(Bytes),
}

impl Hashed {
    fn bytes(&self) -> &[u8] {
        match self {
            Hashed::Plain(frame) => frame.bytes(),
            Hashed::Stored(chunk) => chunk,
        }
    }
}

/// Hashes what arrives until the sender is gone.
fn hash(rx: Receiver<Hashed>) -> Sha256 {
    let mut hasher = Hasher::new();
    for data in rx {
        hasher.update(data.bytes());
    }
    Sha256(hasher.finalize().into())
}

fn hash_stopped() -> Error {
    Error::Interrupted("the hash thread stopped".into())
}

/// Counts the plaintext and cuts it into frames for the zstd workers.
/// Sources read file data straight into its buffer.
struct PlainSink<'p> {
    frames: FrameWriter,
    buf: Vec<u8>,
    filled: usize,
    bytes: u64,
    progress: &'p dyn Progress,
}

impl PlainSink<'_> {
    fn submit(&mut self) -> Result<()> {
        self.bytes += self.filled as u64;
        self.progress.plaintext(self.filled as u64);
        let next = self.frames.buffer();
        let full = std::mem::replace(&mut self.buf, next);
        let len = std::mem::take(&mut self.filled);
        self.frames.submit(full, len)
    }

    fn make_room(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            self.submit().map_err(wrap)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        if self.filled > 0 {
            self.submit()?;
        }
        self.frames.end()?;
        Ok(self.bytes)
    }
}

impl Write for PlainSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.make_room()?;
        let n = data.len().min(self.buf.len() - self.filled);
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for PlainSink<'_> {
    fn written(&self) -> Option<u64> {
        Some(self.bytes + self.filled as u64)
    }

    fn read_from(&mut self, from: &mut dyn Read, limit: u64) -> io::Result<usize> {
        self.make_room()?;
        let room = (self.buf.len() - self.filled) as u64;
        let n = room.min(limit) as usize;
        let n = from.read(&mut self.buf[self.filled..self.filled + n])?;
        self.filled += n;
        Ok(n)
    }
}

/// A message to the store: a chunk, or the end of a complete stream.
enum Chunk {
    Data(Bytes),
    End,
}

/// Counts the stored bytes and cuts them into chunks for the store and the
/// hash thread.
struct StoredSink<'p> {
    tx: mpsc::Sender<Chunk>,
    hash: SyncSender<Hashed>,
    buf: BytesMut,
    chunk_size: usize,
    bytes: u64,
    progress: &'p dyn Progress,
}

impl StoredSink<'_> {
    fn send(&mut self) -> Result<()> {
        let full = std::mem::replace(&mut self.buf, BytesMut::with_capacity(self.chunk_size));
        let chunk = full.freeze();
        self.progress.stored(chunk.len() as u64);
        self.hash
            .send(Hashed::Stored(chunk.clone()))
            .map_err(|_| hash_stopped())?;
        self.tx
            .blocking_send(Chunk::Data(chunk))
            .map_err(|_| downstream_closed())
    }

    fn finish(mut self) -> Result<u64> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx
            .blocking_send(Chunk::End)
            .map_err(|_| downstream_closed())?;
        Ok(self.bytes)
    }
}

impl Write for StoredSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.buf.is_empty() && self.buf.len() + data.len() > self.chunk_size {
            self.send().map_err(wrap)?;
        }
        self.bytes += data.len() as u64;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The store's view of the chunk channel: ends cleanly only after the end
/// marker, and with an error if the sender went away without it.
fn chunk_stream(rx: mpsc::Receiver<Chunk>) -> ByteStream {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Chunk::Data(bytes)) => Some((Ok(bytes), Some(rx))),
            Some(Chunk::End) => None,
            None => Some((Err(upstream_failed()), None)),
        }
    })
    .boxed()
}
