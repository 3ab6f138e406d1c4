//! Restoring part of a directory backup (`restore --include PATH`): the
//! index says which entries match and where they start, and only the zstd
//! frames holding them are fetched (ranged reads), decrypted where they
//! lie in the age stream and extracted.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use super::extract::extract;
use crate::error::{Error, Result, unwrap_io};
use crate::index::{Finder, Span};
use crate::keys::Identities;
use crate::manifest::Manifest;
use crate::ops::ls::read_index;
use crate::pipeline::decode::{Expect, header_error};
use crate::pipeline::ranged::with_ranged;
use crate::store::Store;

/// What a partial restore read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartRead {
    /// Bytes of the index object.
    pub index: u64,
    /// Bytes of the data object.
    pub data: u64,
}

/// The parts of the plaintext holding `include`'s entries, from the index.
async fn locate(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    include: &[String],
) -> Result<Vec<Span>> {
    let id = manifest.id.to_string();
    let finder = Arc::new(std::sync::Mutex::new(Finder::new(include)));
    let tap = Arc::clone(&finder);
    let seen_id = id.clone();
    let layout = read_index(store, manifest, identities, move |e| {
        tap.lock()
            .unwrap_or_else(|e| e.into_inner())
            .see(&e, &seen_id)
    })
    .await?;
    let finder = std::mem::replace(
        &mut *finder.lock().unwrap_or_else(|e| e.into_inner()),
        Finder::new(&[]),
    );
    finder.spans(&layout, &id)
}

/// Extracts the entries under `include` into `into`, reading only the
/// frames that hold them; returns the entries extracted, the plaintext
/// bytes they span and what was read.
pub(crate) async fn extract_part(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    include: &[String],
    into: PathBuf,
) -> Result<(u64, u64, PartRead)> {
    let spans = locate(store, manifest, identities, include).await?;
    let mut read = PartRead {
        index: manifest.index.as_ref().map_or(0, |i| i.stored),
        data: 0,
    };
    let mut entries = 0;
    let plaintext = spans.iter().map(|s| s.end - s.start).sum();
    let include: Arc<[String]> = include.into();
    for Span {
        start,
        end,
        compressed_at,
        frame_start,
    } in spans
    {
        let expect = Expect::manifest(manifest);
        let ids = identities.clone();
        let (into, include) = (into.clone(), Arc::clone(&include));
        let (n, fetched) = with_ranged(
            store,
            &manifest.object,
            manifest.sizes.stored,
            move |ranged| {
                let age_ids = ids.age_identities();
                let n = {
                    let decryptor = age::Decryptor::new(&mut *ranged)
                        .map_err(|e| header_error(&expect, &ids, e))?;
                    let mut plain = decryptor
                        .decrypt(age_ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
                        .map_err(|e| header_error(&expect, &ids, e))?;
                    plain
                        .seek(SeekFrom::Start(compressed_at))
                        .map_err(|e| damaged(&expect, &e))?;
                    let mut frames = zstd::Decoder::new(plain).map_err(unwrap_io)?;
                    io::copy(
                        &mut (&mut frames).take(start - frame_start),
                        &mut io::sink(),
                    )
                    .map_err(|e| damaged(&expect, &e))?;
                    let mut part = Checked {
                        inner: (&mut frames).take(end - start),
                        expect: &expect,
                    };
                    extract(&mut part, &into, false, &include)?
                };
                Ok((n, ranged.fetched))
            },
        )
        .await?;
        entries += n;
        read.data += fetched;
    }
    Ok((entries, plaintext, read))
}

/// Turns read failures of the encrypted, compressed stream into
/// [`Error::Corrupt`] naming the backup.
struct Checked<'e, R> {
    inner: R,
    expect: &'e Expect,
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| crate::error::wrap(damaged(self.expect, &e)))
    }
}

fn damaged(expect: &Expect, e: &io::Error) -> Error {
    Error::Corrupt {
        id: expect.id.clone(),
        problem: format!("its data does not decrypt or decompress where the index points: {e}"),
    }
}
