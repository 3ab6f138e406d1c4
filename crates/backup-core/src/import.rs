//! Bringing existing `tar | zstd | age` files into a repository.
//!
//! Teams moving from cron scripts have archives made by
//! `tar -c DIR | zstd | age -r KEY > FILE`. Importing one decrypts and
//! decompresses it once to measure and check it (sizes, both SHA-256
//! digests, the tar structure), then stores it unchanged with a manifest,
//! so it is listed, verified and restored like any other backup.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};
use crate::keys::Identities;
use crate::pipeline::{BlockReader, read_full, unwrap_io};
use crate::restore::check_tar;

/// Who can open an age file: the public keys among `identities` that do, or
/// a passphrase.
pub(crate) fn openers(
    path: &Path,
    identities: &Identities,
    id: &str,
) -> Result<(Vec<String>, bool)> {
    let open = || -> Result<age::Decryptor<BufReader<File>>> {
        let file = File::open(path).map_err(|e| Error::Source {
            what: path.display().to_string(),
            source: e,
        })?;
        age::Decryptor::new_buffered(BufReader::new(file)).map_err(|e| Error::Corrupt {
            id: id.to_owned(),
            problem: format!("{} is not an age file ({e})", path.display()),
        })
    };
    if open()?.is_scrypt() {
        return Ok((Vec::new(), true));
    }
    let mut keys = Vec::new();
    for key in identities.recipients() {
        let one = identities.only(&key);
        let ids = one.age_identities();
        if open()?
            .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .is_ok()
        {
            keys.push(key.to_string());
        }
    }
    if keys.is_empty() {
        return Err(Error::WrongKey {
            id: id.to_owned(),
            encrypted_to: "recipients that none of the given identities match".into(),
        });
    }
    Ok((keys, false))
}

/// A tar header: "ustar" magic and a valid checksum.
pub(crate) fn looks_like_tar(block: &[u8; 512]) -> bool {
    if &block[257..262] != b"ustar" {
        return false;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == Some(sum)
}

/// The sink used when importing: walks the archive when the plaintext is a
/// tar stream (returning its entry count), else just reads it.
pub(crate) fn sniff(input: &mut BlockReader) -> Result<Option<u64>> {
    let mut head = [0u8; 512];
    let n = read_full(input, &mut head).map_err(unwrap_io)?;
    if n == head.len() && looks_like_tar(&head) {
        let mut whole = (&head[..]).chain(input);
        check_tar(&mut whole).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_are_recognised() {
        let mut header = tar::Header::new_gnu();
        header.set_path("a.txt").expect("path");
        header.set_size(3);
        header.set_cksum();
        let mut block = [0u8; 512];
        block.copy_from_slice(header.as_bytes());
        assert!(looks_like_tar(&block));
        block[0] ^= 1;
        assert!(!looks_like_tar(&block), "checksum must match");
        assert!(!looks_like_tar(&[0u8; 512]));
    }
}
