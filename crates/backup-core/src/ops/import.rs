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
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;

use crate::error::{Error, Result, source_err, unwrap_io};
use crate::keys::Identities;
use crate::manifest::{
    BackupId, Compression, DATA_PREFIX, Encryption, MANIFEST_FORMAT, Manifest, Payload, SourceInfo,
    Tool,
};
use crate::ops::backup::check_name;
use crate::ops::restore::extract::{EntryCheck, check_tar};
use crate::ops::verify::verify;
use crate::pipeline::decode::{Expect, decode_stream};
use crate::pipeline::{BlockReader, on_thread, read_full};
use crate::progress::{NoProgress, Progress};
use crate::store::{Store, StoreExt, file_stream};

/// Imports the age file at `path`; see
/// [`Repository::import`](crate::Repository::import).
pub(crate) async fn import(
    store: &dyn Store,
    path: &std::path::Path,
    identities: &Identities,
    name: Option<String>,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    let name = name.unwrap_or_else(|| import_name(path));
    check_name(&name)?;
    let started_at = Utc::now();
    let id = BackupId::generate(started_at);
    let (recipients, passphrase) = {
        let (path, ids, id) = (path.to_owned(), identities.clone(), id.to_string());
        on_thread(move || openers(&path, &ids, &id)).await?
    };
    let open = |path: &std::path::Path| std::fs::File::open(path).map_err(|e| source_err(path, e));
    let expect = Expect {
        id: id.to_string(),
        recipients: recipients.clone(),
        encrypted_to: recipients.join(", "),
        values: None,
    };
    let stream = file_stream(open(path)?, path.display().to_string(), String::new());
    let (measured, entries) = decode_stream(stream, expect, identities, progress, sniff).await?;
    let payload = if entries.is_some() {
        Payload::Tar
    } else {
        Payload::Raw
    };
    let object = match payload {
        Payload::Tar => format!("{DATA_PREFIX}{id}.tar.zst.age"),
        Payload::Raw => format!("{DATA_PREFIX}{id}.zst.age"),
    };
    // Store the file unchanged, checking it is still what was measured.
    let stored = store
        .put(
            &object,
            file_stream(open(path)?, path.display().to_string(), String::new()),
        )
        .await?;
    if stored.size != measured.sizes.stored {
        let _ = store.delete(&object).await;
        return Err(Error::Source {
            what: path.display().to_string(),
            source: std::io::Error::other("the file changed while it was imported"),
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id,
        name,
        source: SourceInfo::Imported {
            path: path.to_string_lossy().into_owned(),
            entries,
        },
        started_at,
        finished_at: Utc::now(),
        payload,
        object,
        sizes: measured.sizes,
        sha256: measured.digests,
        compression: Compression {
            algorithm: "zstd".into(),
            level: 0,
        },
        encryption: Encryption {
            algorithm: "age".into(),
            recipients,
            passphrase,
        },
        tool: Tool::current(),
        warnings: Vec::new(),
        parent: None,
        index: None,
    };
    // A file swapped between the two reads is caught here: verify the
    // stored copy against what was measured before publishing it.
    if let Err(e) = verify(store, &manifest, identities, Arc::new(NoProgress)).await {
        let _ = store.delete(&manifest.object).await;
        return Err(e);
    }
    store
        .put_bytes(&manifest.id.manifest_key(), Bytes::from(manifest.to_json()))
        .await?;
    Ok(manifest)
}

/// `etc.tar.zst.age` -> `etc`.
fn import_name(path: &std::path::Path) -> String {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = file.as_str();
    for ext in [".age", ".zst", ".zstd", ".tar"] {
        stem = stem.strip_suffix(ext).unwrap_or(stem);
    }
    if stem.is_empty() {
        "imported".into()
    } else {
        stem.to_owned()
    }
}

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
        check_tar(&mut whole, &mut EntryCheck::default(), false).map(Some)
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
