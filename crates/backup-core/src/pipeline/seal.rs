//! age encryption with the payload sealed by ring.
//!
//! The output is a standard age v1 file (<https://age-encryption.org/v1>):
//! the age crate writes the header, exactly as it would for its own
//! encryptor, and this module writes the payload: the STREAM construction of
//! ChaCha20-Poly1305 over 64 KiB chunks, under the key HKDF-SHA256 derives
//! from the file key and the 16-byte nonce that ends the header.
//!
//! Why not the age crate's own [`StreamWriter`](age::stream::StreamWriter)?
//! Its ChaCha20-Poly1305 (RustCrypto) ran at ~0.7 GB/s here where ring's
//! runs at ~2.4 GB/s, and on a backup of incompressible data encryption was
//! the pipeline's largest single cost. Every object is still decrypted by
//! the age crate (and the tests by the `age` tool too), so a mistake here
//! cannot pass unnoticed.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{self, Write};

use age::secrecy::ExposeSecret;
use age::secrecy::zeroize::Zeroizing;
use age_core::format::{FileKey, Stanza};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use crate::error::{Error, Result};
use crate::keys::Recipients;

/// Plaintext bytes per STREAM chunk, as the age format fixes it.
const CHUNK: usize = 64 * 1024;
/// Bytes of the payload nonce that ends an age header.
const NONCE: usize = 16;

/// Writes an age file to `out`: the header at once, the payload as it is
/// written. Call [`finish`](Self::finish), or the file is truncated (and
/// every age decryptor refuses it).
pub(crate) struct Sealer<W: Write> {
    key: LessSafeKey,
    counter: u64,
    chunk: Vec<u8>,
    out: W,
}

impl<W: Write> Sealer<W> {
    /// Starts an age file encrypted to `recipients`.
    pub(crate) fn new(recipients: &Recipients, mut out: W) -> Result<Self> {
        let tap = KeyTap::default();
        let inner = recipients.age_recipients();
        let tapped: Vec<_> = inner.iter().map(|r| tap.wrap(r.as_ref())).collect();
        let encryptor =
            age::Encryptor::with_recipients(tapped.iter().map(|t| t as &dyn age::Recipient))
                .map_err(|e| Error::Encrypt(e.to_string()))?;
        let mut header = Vec::new();
        // The age crate writes the header and the payload nonce; its own
        // payload writer is dropped unused.
        drop(encryptor.wrap_output(&mut header).map_err(io_error)?);
        drop(tapped);
        let file_key = tap
            .key
            .into_inner()
            .ok_or_else(|| Error::Encrypt("no recipient wrapped the file key".into()))?;
        let nonce = header
            .len()
            .checked_sub(NONCE)
            .map(|at| &header[at..])
            .ok_or_else(|| Error::Encrypt("the age header is too short".into()))?;
        // Wiped when this function returns; ring keeps its own expanded
        // copy for as long as the sealer lives.
        let payload_key = Zeroizing::new(age_core::primitives::hkdf(
            nonce,
            b"payload",
            file_key.expose_secret(),
        ));
        let key = UnboundKey::new(&CHACHA20_POLY1305, payload_key.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| Error::Encrypt("cannot set up ChaCha20-Poly1305".into()))?;
        out.write_all(&header).map_err(io_error)?;
        Ok(Self {
            key,
            counter: 0,
            chunk: Vec::with_capacity(CHUNK + ring::aead::MAX_TAG_LEN),
            out,
        })
    }

    /// Encrypts and writes the chunk held, flagged as the last one or not.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        let mut nonce = [0u8; 12];
        nonce[3..11].copy_from_slice(&self.counter.to_be_bytes());
        nonce[11] = u8::from(last);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut self.chunk,
            )
            .map_err(|_| io::Error::other("ChaCha20-Poly1305 failed"))?;
        self.chunk.extend_from_slice(tag.as_ref());
        self.out.write_all(&self.chunk)?;
        self.chunk.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("too many age STREAM chunks"))?;
        Ok(())
    }

    /// Writes the last chunk (empty only when nothing was written) and
    /// returns the output.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full chunk is sealed only once more data follows: the last
        // chunk of the stream, full or not, carries the last flag.
        if self.chunk.len() == CHUNK {
            self.seal(false)?;
        }
        let n = data.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn io_error(e: io::Error) -> Error {
    Error::Encrypt(e.to_string())
}

/// Remembers the file key the age crate hands its recipients.
#[derive(Default)]
struct KeyTap {
    key: RefCell<Option<FileKey>>,
}

impl KeyTap {
    fn wrap<'a>(&'a self, inner: &'a dyn age::Recipient) -> Tapped<'a> {
        Tapped { inner, tap: self }
    }
}

/// A recipient that wraps the file key as `inner` does and keeps a copy.
struct Tapped<'a> {
    inner: &'a dyn age::Recipient,
    tap: &'a KeyTap,
}

impl age::Recipient for Tapped<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let copy = FileKey::new(Box::new(*file_key.expose_secret()));
        *self.tap.key.borrow_mut() = Some(copy);
        self.inner.wrap_file_key(file_key)
    }
}

impl crate::index::Spool for Sealer<std::fs::File> {
    fn finish(self: Box<Self>) -> io::Result<std::fs::File> {
        Sealer::finish(*self)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn decrypt(identity: &age::x25519::Identity, file: &[u8]) -> Vec<u8> {
        let decryptor = age::Decryptor::new(file).expect("an age header");
        let mut reader = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .expect("the identity opens it");
        let mut plain = Vec::new();
        reader
            .read_to_end(&mut plain)
            .expect("the payload verifies");
        plain
    }

    fn seal_in_pieces(recipients: &Recipients, data: &[u8], piece: usize) -> Vec<u8> {
        let mut sealer = Sealer::new(recipients, Vec::new()).expect("sealer");
        for part in data.chunks(piece) {
            sealer.write_all(part).expect("write");
        }
        sealer.finish().expect("finish")
    }

    #[test]
    fn the_age_crate_reads_every_length_around_chunk_boundaries() {
        let identity = age::x25519::Identity::generate();
        let recipients = Recipients::x25519([identity.to_public()]);
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let file = seal_in_pieces(&recipients, &data, 1000 + len % 7);
            assert_eq!(decrypt(&identity, &file), data, "length {len}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn random_bytes_in_random_writes_round_trip(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4 * CHUNK + 100),
            piece in 1usize..3 * CHUNK,
        ) {
            let identity = age::x25519::Identity::generate();
            let recipients = Recipients::x25519([identity.to_public()]);
            let file = seal_in_pieces(&recipients, &data, piece);
            proptest::prop_assert_eq!(decrypt(&identity, &file), data);
        }
    }

    #[test]
    fn a_passphrase_file_opens_with_the_passphrase() {
        let secret = age::secrecy::SecretString::from("correct horse".to_owned());
        let recipients = Recipients::Passphrase(secret.clone());
        let mut sealer = Sealer::new(&recipients, Vec::new()).expect("sealer");
        sealer.write_all(b"hello").expect("write");
        let file = sealer.finish().expect("finish");
        let identity = age::scrypt::Identity::new(secret);
        let mut reader = age::Decryptor::new(&file[..])
            .expect("header")
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .expect("passphrase opens it");
        let mut plain = Vec::new();
        reader.read_to_end(&mut plain).expect("payload");
        assert_eq!(plain, b"hello");
    }

    #[test]
    fn a_file_cut_at_a_chunk_boundary_is_refused() {
        let identity = age::x25519::Identity::generate();
        let recipients = Recipients::x25519([identity.to_public()]);
        let mut sealer = Sealer::new(&recipients, Vec::new()).expect("sealer");
        sealer.write_all(&vec![7u8; 2 * CHUNK]).expect("write");
        let file = sealer.finish().expect("finish");
        // Without its last chunk the file must not decrypt as a shorter one.
        let cut = &file[..file.len() - (CHUNK + 16)];
        let mut reader = age::Decryptor::new(cut)
            .expect("header")
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .expect("identity");
        let mut plain = Vec::new();
        assert!(reader.read_to_end(&mut plain).is_err());
    }
}
