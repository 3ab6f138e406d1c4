//! Restore direction: store -> age -> zstd -> sink.
//!
//! Three pipeline threads run at once: *open* (hash and count the stored
//! bytes, decrypt), *expand* (decompress, hash and count the plaintext) and
//! *consume* (the caller's sink: a tar extractor, a file, a checker). Every
//! check against the manifest runs before the end marker is passed on, so a
//! sink that sees a clean end has received exactly the bytes that were backed
//! up. age authenticates every 64 KiB of ciphertext before it is decrypted,
//! so damaged data stops the pipeline at the damaged chunk; a sink may have
//! received the authentic data before it.

use std::io::{self, BufRead, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use sha2::{Digest, Sha256 as Hasher};
use tokio::sync::mpsc;

use super::{
    BLOCK, BlockReader, Measured, QUEUE, block_channel, first_failure, on_thread, read_buffered,
    read_full, recover, split, unwrap_io, wrap,
};
use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::manifest::{Digests, Manifest, Sha256, Sizes};
use crate::progress::Progress;
use crate::store::{ByteStream, Store};

/// What a decoded stream must match: a manifest's sizes and digests, or
/// nothing (when importing, the values are measured instead).
#[derive(Debug, Clone)]
pub(crate) struct Expect {
    /// The backup's id, for messages.
    pub id: String,
    /// Public keys it was encrypted to (empty when unknown).
    pub recipients: Vec<String>,
    /// Who can decrypt it, for messages.
    pub encrypted_to: String,
    /// Sizes and digests to check, when known.
    pub values: Option<(Sizes, Digests)>,
}

impl Expect {
    pub(crate) fn manifest(m: &Manifest) -> Self {
        Expect {
            id: m.id.to_string(),
            recipients: m.encryption.recipients.clone(),
            encrypted_to: m.encrypted_to(),
            values: Some((m.sizes, m.sha256)),
        }
    }
}

/// Streams the backup described by `manifest` through decryption and
/// decompression into `consume`, checking sizes and digests on the way.
/// `consume` must read its input to the end (what it leaves is drained).
pub(crate) async fn decode<T: Send + 'static>(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    progress: Arc<dyn Progress>,
    consume: impl FnOnce(&mut BlockReader) -> Result<T> + Send + 'static,
) -> Result<T> {
    let id = manifest.id.to_string();
    let stream = store.get(&manifest.object).await.map_err(|e| match e {
        Error::NotFound { key, .. } => Error::Corrupt {
            id: id.clone(),
            problem: format!("its data object `{key}` is missing from the store"),
        },
        other => other,
    })?;
    let expect = Expect::manifest(manifest);
    decode_stream(stream, expect, identities, progress, consume)
        .await
        .map(|(_, value)| value)
}

/// Decodes any stored stream, checking it against `expect` where values are
/// given, and returns what was measured with the sink's result.
pub(crate) async fn decode_stream<T: Send + 'static>(
    mut stream: ByteStream,
    expect: Expect,
    identities: &Identities,
    progress: Arc<dyn Progress>,
    consume: impl FnOnce(&mut BlockReader) -> Result<T> + Send + 'static,
) -> Result<(Measured, T)> {
    let (fetched_tx, fetched_rx) = mpsc::channel::<Result<Bytes>>(QUEUE);
    let pump = async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if fetched_tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };

    let (compressed_tx, mut compressed_rx) = block_channel();
    let ids = identities.clone();
    let e = expect.clone();
    let open_progress = Arc::clone(&progress);
    let open = on_thread(move || {
        let mut src = Fetched {
            rx: fetched_rx,
            cur: Bytes::new(),
            hasher: Hasher::new(),
            bytes: 0,
            progress: open_progress.as_ref(),
        };
        let decryptor =
            age::Decryptor::new_buffered(&mut src).map_err(|err| header_error(&e, &ids, err))?;
        let age_ids = ids.age_identities();
        let mut plain = decryptor
            .decrypt(age_ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|err| header_error(&e, &ids, err))?;
        let mut compressed = 0u64;
        loop {
            let mut block = vec![0u8; BLOCK];
            let n = read_full(&mut plain, &mut block).map_err(|err| payload_error(&e, err))?;
            if n == 0 {
                break;
            }
            block.truncate(n);
            compressed += n as u64;
            compressed_tx.send(block)?;
        }
        drop(plain);
        // Anything after age's final chunk is damage too: count and hash it.
        io::copy(&mut src, &mut io::sink()).map_err(|err| payload_error(&e, err))?;
        let digest = src.digest();
        if let Some((sizes, digests)) = &e.values {
            check(
                &e,
                "stored",
                src.bytes,
                sizes.stored,
                Some((digest, digests.stored)),
            )?;
            check(&e, "compressed", compressed, sizes.compressed, None)?;
        }
        compressed_tx.end()?;
        Ok((src.bytes, digest, compressed))
    });

    let (plain_tx, mut plain_rx) = block_channel();
    let e = expect.clone();
    let expand = on_thread(move || {
        let mut zstd = zstd::stream::read::Decoder::with_buffer(&mut compressed_rx)
            .map_err(|err| Error::Interrupted(format!("cannot set up zstd: {err}")))?;
        let (mut hasher, mut raw) = (Hasher::new(), 0u64);
        loop {
            let mut block = vec![0u8; BLOCK];
            let n = read_full(&mut zstd, &mut block).map_err(|err| zstd_error(&e, err))?;
            if n == 0 {
                break;
            }
            block.truncate(n);
            hasher.update(&block);
            raw += n as u64;
            progress.plaintext(n as u64);
            plain_tx.send(block)?;
        }
        let digest = Sha256(hasher.finalize().into());
        if let Some((sizes, digests)) = &e.values {
            check(
                &e,
                "plaintext",
                raw,
                sizes.raw,
                Some((digest, digests.plaintext)),
            )?;
        }
        plain_tx.end()?;
        Ok((raw, digest))
    });

    let sink = on_thread(move || {
        let value = consume(&mut plain_rx)?;
        io::copy(&mut plain_rx, &mut io::sink()).map_err(unwrap_io)?;
        Ok(value)
    });

    let ((), open, expand, sink) = tokio::join!(pump, open, expand, sink);
    let (open, open_status) = split(open);
    let (expand, expand_status) = split(expand);
    let (value, sink_status) = split(sink);
    first_failure([open_status, expand_status, sink_status])?;
    match (open, expand, value) {
        (Some((stored, stored_sha, compressed)), Some((raw, plaintext)), Some(value)) => Ok((
            Measured::new((raw, plaintext), compressed, (stored, stored_sha)),
            value,
        )),
        _ => Err(Error::Interrupted(
            "a pipeline stage returned no result".into(),
        )),
    }
}

/// Compares a count (and digest) with the manifest.
fn check(
    m: &Expect,
    what: &str,
    got: u64,
    want: u64,
    digests: Option<(Sha256, Sha256)>,
) -> Result<()> {
    if got != want {
        return Err(corrupt(
            m,
            format!("{what} size is {got} bytes, the manifest says {want}"),
        ));
    }
    if let Some((got, want)) = digests {
        if got != want {
            return Err(corrupt(
                m,
                format!("{what} SHA-256 is {got}, the manifest says {want}"),
            ));
        }
    }
    Ok(())
}

fn corrupt(m: &Expect, problem: String) -> Error {
    Error::Corrupt {
        id: m.id.clone(),
        problem,
    }
}

/// Explains a failure to open the age header.
pub(crate) fn header_error(m: &Expect, ids: &Identities, e: age::DecryptError) -> Error {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys | D::DecryptionFailed | D::KeyDecryptionFailed => {
            let ours: Vec<String> = ids.recipients().iter().map(ToString::to_string).collect();
            if let Some(k) = ours.iter().find(|k| m.recipients.contains(k)) {
                corrupt(
                    m,
                    format!(
                        "the identity for {k}, a recipient of this backup, cannot unwrap the \
                         file key: the stored object's header was modified"
                    ),
                )
            } else {
                Error::WrongKey {
                    id: m.id.clone(),
                    encrypted_to: m.encrypted_to.clone(),
                }
            }
        }
        D::ExcessiveWork { required, target } => Error::Key {
            path: "passphrase".into(),
            problem: format!(
                "the backup needs scrypt work factor 2^{required}, above the allowed 2^{target}"
            ),
        },
        D::Io(io) => {
            recover(io).unwrap_or_else(|io| corrupt(m, format!("cannot read its age header: {io}")))
        }
        other => corrupt(
            m,
            format!("the stored object is not a valid age file ({other})"),
        ),
    }
}

/// Explains a failure while decrypting the payload.
fn payload_error(m: &Expect, e: io::Error) -> Error {
    recover(e).unwrap_or_else(|io| {
        corrupt(
            m,
            format!(
                "decryption failed ({io}): the stored object was modified or truncated after \
                 it was written"
            ),
        )
    })
}

/// Explains a failure while decompressing.
fn zstd_error(m: &Expect, e: io::Error) -> Error {
    recover(e).unwrap_or_else(|io| corrupt(m, format!("the compressed stream is invalid ({io})")))
}

/// The stored bytes as they arrive from the store, hashed and counted.
struct Fetched<'p> {
    rx: mpsc::Receiver<Result<Bytes>>,
    cur: Bytes,
    hasher: Hasher,
    bytes: u64,
    progress: &'p dyn Progress,
}

impl Fetched<'_> {
    fn digest(&self) -> Sha256 {
        Sha256(self.hasher.clone().finalize().into())
    }
}

impl BufRead for Fetched<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.hasher.update(&chunk);
                    self.bytes += chunk.len() as u64;
                    self.progress.stored(chunk.len() as u64);
                    self.cur = chunk;
                }
                Some(Err(e)) => return Err(wrap(e)),
                None => break,
            }
        }
        Ok(&self.cur)
    }

    fn consume(&mut self, amt: usize) {
        self.cur.advance(amt.min(self.cur.len()));
    }
}

impl Read for Fetched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}
