//! The pipeline's stages one at a time, on data in memory: for benchmarks
//! and for callers that need a single stage. Each function does exactly
//! what its stage does inside a backup or restore.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::unwrap_io;
use crate::error::{Error, Result};
use crate::keys::{Identities, Recipients};
use crate::pipeline::{PipelineOptions, frames};
use crate::sink::Sink;
use crate::source::{ReadOptions, Source};

/// Counts bytes, keeps none.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Counter {
    fn read_from(&mut self, from: &mut dyn Read, limit: u64) -> io::Result<usize> {
        let mut buf = [0u8; 64 << 10];
        let want = buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
        let n = from.read(&mut buf[..want])?;
        self.0 += n as u64;
        Ok(n)
    }
}

/// Reads a file or directory tree the way a backup does (a directory as a
/// tar stream) and returns the number of plaintext bytes produced.
///
/// # Errors
///
/// When the path cannot be read.
pub fn read_source(path: &Path) -> Result<u64> {
    let mut counter = Counter(0);
    let warn = |_: String| {};
    let opts = ReadOptions {
        skip_unreadable: true,
        warn: &warn,
        tracker: None,
        filter: &crate::source::Filter::none(),
        index: None,
    };
    Source::path(path).produce(&mut counter, &opts)?;
    Ok(counter.0)
}

/// Compresses `data` into independent zstd frames on `opts.workers`
/// threads, as a backup does.
///
/// # Errors
///
/// [`Error::InvalidOption`] when `opts` is out of range.
pub fn compress(data: &[u8], opts: &PipelineOptions) -> Result<Vec<u8>> {
    opts.check()?;
    let (writer, mut reader) = frames::start(opts.level, opts.workers, opts.frame_size, 2)?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<()> {
            for chunk in data.chunks(opts.frame_size) {
                let mut buf = writer.buffer();
                buf[..chunk.len()].copy_from_slice(chunk);
                writer.submit(buf, chunk.len())?;
            }
            writer.end()
        });
        let mut out = Vec::new();
        while let Some(frame) = reader.next()? {
            out.extend_from_slice(frame.compressed());
            reader.recycle(frame);
        }
        producer
            .join()
            .map_err(|_| Error::Interrupted("compress thread panicked".into()))??;
        Ok(out)
    })
}

/// Decompresses a zstd stream (any number of frames).
///
/// # Errors
///
/// When `data` is not a zstd stream.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>> {
    zstd::stream::decode_all(data).map_err(|e| Error::Interrupted(format!("zstd: {e}")))
}

/// Encrypts `data` as an age file.
///
/// # Errors
///
/// When encryption cannot be set up.
pub fn encrypt(data: &[u8], recipients: &Recipients) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 4096 + 1024);
    let mut w = crate::pipeline::seal::Sealer::new(recipients, &mut out)?;
    w.write_all(data).map_err(unwrap_io)?;
    w.finish().map_err(unwrap_io)?;
    Ok(out)
}

/// Decrypts an age file.
///
/// # Errors
///
/// [`Error::WrongKey`] or [`Error::Corrupt`] when the identities do not
/// open it or it is damaged.
pub fn decrypt(data: &[u8], identities: &Identities) -> Result<Vec<u8>> {
    let ids = identities.age_identities();
    let d = age::Decryptor::new_buffered(data).map_err(|e| Error::Interrupted(e.to_string()))?;
    let mut r = d
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| Error::Interrupted(e.to_string()))?;
    let mut out = Vec::with_capacity(data.len());
    r.read_to_end(&mut out).map_err(unwrap_io)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_round_trip() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 91) as u8).collect();
        let opts = PipelineOptions {
            frame_size: 256 << 10,
            ..PipelineOptions::default()
        };
        let compressed = compress(&data, &opts).expect("compress");
        let key = crate::keys::generate();
        let sealed = encrypt(&compressed, &Recipients::x25519([key.to_public()])).expect("encrypt");
        let opened = decrypt(&sealed, &Identities::from_key(key)).expect("decrypt");
        assert_eq!(decompress(&opened).expect("decompress"), data);
    }
}
