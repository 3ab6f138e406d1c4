//! Reading parts of a stored object: a `Read + Seek` view of it for a
//! pipeline thread, each read served by a ranged read of the store on the
//! caller's task (so it works on any runtime), and the bytes fetched
//! counted.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::mpsc as sync;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::on_thread;
use crate::error::{Result, wrap};
use crate::store::Store;

/// How much is fetched at once by a reader walking forward: four age
/// chunks and a bit, so it makes few requests.
const WINDOW: u64 = 4 * (64 << 10) + 64;
/// After a seek, one age chunk (and its tag): a reader that wants one
/// small file fetches little.
const AFTER_SEEK: u64 = (64 << 10) + 16;
/// At the start: the age header (a few hundred bytes per recipient).
const HEADER: u64 = 4 << 10;

type Request = (u64, u64, sync::SyncSender<Result<Bytes>>);

/// A stored object as `Read + Seek`, for a pipeline thread.
pub(crate) struct Ranged {
    requests: mpsc::Sender<Request>,
    size: u64,
    pos: u64,
    /// The window last fetched and where it starts.
    window: Bytes,
    window_at: u64,
    /// Bytes fetched from the store.
    pub(crate) fetched: u64,
}

impl Ranged {
    fn fill(&mut self) -> io::Result<()> {
        let inside =
            self.pos >= self.window_at && self.pos < self.window_at + self.window.len() as u64;
        if inside || self.pos >= self.size {
            return Ok(());
        }
        let onward =
            !self.window.is_empty() && self.pos == self.window_at + self.window.len() as u64;
        let want = match (self.pos, onward) {
            (0, _) => HEADER,
            (_, true) => WINDOW,
            (_, false) => AFTER_SEEK,
        };
        let len = want.min(self.size - self.pos);
        let (tx, rx) = sync::sync_channel(1);
        self.requests
            .blocking_send((self.pos, len, tx))
            .map_err(|_| io::Error::other("the store reader stopped"))?;
        let data = rx
            .recv()
            .map_err(|_| io::Error::other("the store reader stopped"))?
            .map_err(wrap)?;
        if data.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stored object ends early",
            ));
        }
        self.fetched += data.len() as u64;
        self.window_at = self.pos;
        self.window = data;
        Ok(())
    }
}

impl Read for Ranged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill()?;
        if self.pos >= self.size {
            return Ok(0);
        }
        let from = (self.pos - self.window_at) as usize;
        let n = buf.len().min(self.window.len() - from);
        buf[..n].copy_from_slice(&self.window[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Ranged {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Runs `work` on a pipeline thread with `key` (of `size` bytes) as a
/// [`Ranged`] reader, serving its reads from `store` meanwhile.
pub(crate) async fn with_ranged<T: Send + 'static>(
    store: &dyn Store,
    key: &str,
    size: u64,
    work: impl FnOnce(&mut Ranged) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, mut rx) = mpsc::channel::<Request>(1);
    let mut reader = Ranged {
        requests: tx,
        size,
        pos: 0,
        window: Bytes::new(),
        window_at: 0,
        fetched: 0,
    };
    let worker = on_thread(move || work(&mut reader));
    tokio::pin!(worker);
    loop {
        tokio::select! {
            done = &mut worker => return done,
            request = rx.recv() => match request {
                Some((start, len, reply)) => {
                    let _ = reply.send(store.get_range(key, start, len).await);
                }
                None => return worker.await,
            },
        }
    }
}
