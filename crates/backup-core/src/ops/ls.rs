//! Looking inside a directory backup: its entries from the encrypted
//! index alone, or, for a backup without one, from its tar stream.

use std::io::Read;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::{self, Entry, Kind, Layout};
use crate::keys::Identities;
use crate::manifest::{Manifest, Payload};
use crate::pipeline::decode::{Expect, decode, decode_stream};
use crate::progress::NoProgress;
use crate::store::Store;

/// Where a listing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// The backup's index: nothing else was read.
    Index,
    /// The whole data object (a backup made before indexes existed).
    Data,
}

/// Lists the entries of a directory backup at or below `under` (`.` or
/// empty for all), handing each to `each` in archive order; see
/// [`Repository::ls`](crate::Repository::ls).
pub(crate) async fn ls(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    under: &str,
    mut each: impl FnMut(Entry) -> Result<()> + Send + 'static,
) -> Result<Listed> {
    directory_only(manifest)?;
    let under = index::normalize(under, directory_path(manifest));
    if manifest.index.is_some() {
        read_index(store, manifest, identities, move |e| {
            if index::is_under(&e.path, &under) {
                // Where it starts is the index's business.
                each(Entry { offset: 0, ..e })?;
            }
            Ok(())
        })
        .await?;
        return Ok(Listed::Index);
    }
    let id = manifest.id.to_string();
    decode(
        store,
        manifest,
        identities,
        Arc::new(NoProgress),
        move |input| {
            walk_tar(input, &id, |e| {
                if index::is_under(&e.path, &under) {
                    each(e)?;
                }
                Ok(())
            })
        },
    )
    .await?;
    Ok(Listed::Data)
}

/// The backed-up directory (for several paths, their common one).
pub(crate) fn directory_path(manifest: &Manifest) -> Option<&str> {
    match &manifest.source {
        crate::manifest::SourceInfo::Directory { path, .. } => Some(path),
        _ => None,
    }
}

/// Refuses backups that hold no directory.
pub(crate) fn directory_only(manifest: &Manifest) -> Result<()> {
    if manifest.payload == Payload::Tar {
        return Ok(());
    }
    Err(Error::WrongKind {
        id: manifest.id.to_string(),
        problem: "holds one file or stream, not a directory: there are no entries to list or \
                  pick; restore it whole"
            .into(),
    })
}

/// Reads a backup's index, handing each entry to `each`; returns its
/// layout. The index is authenticated by age chunk by chunk, like the data.
pub(crate) async fn read_index(
    store: &dyn Store,
    manifest: &Manifest,
    identities: &Identities,
    each: impl FnMut(Entry) -> Result<()> + Send + 'static,
) -> Result<Layout> {
    let Some(object) = &manifest.index else {
        return Err(Error::Corrupt {
            id: manifest.id.to_string(),
            problem: "has no index".into(),
        });
    };
    let stream = store.get(&object.object).await?;
    let expect = Expect {
        values: None,
        ..Expect::manifest(manifest)
    };
    let id = manifest.id.to_string();
    let (_, layout) = decode_stream(
        stream,
        expect,
        identities,
        Arc::new(NoProgress),
        move |input| index::read(input, &id, each),
    )
    .await?;
    Ok(layout)
}

/// Walks a tar stream, handing each entry (but an incremental's deletion
/// list) to `each`.
fn walk_tar(
    input: &mut dyn Read,
    id: &str,
    mut each: impl FnMut(Entry) -> Result<()>,
) -> Result<()> {
    let fail = |e: std::io::Error| {
        crate::error::recover(e).unwrap_or_else(|e| Error::Corrupt {
            id: id.to_owned(),
            problem: format!("its archive does not read: {e}"),
        })
    };
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let name = entry.path_bytes().into_owned();
        if name == crate::incremental::DELETED_MEMBER.as_bytes() {
            std::io::copy(&mut entry, &mut std::io::sink()).map_err(fail)?;
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            _ => Kind::Other,
        };
        let link = entry.link_name_bytes().map(|l| match kind {
            Kind::Hardlink => index::display_name(&l),
            _ => String::from_utf8_lossy(&l).into_owned(),
        });
        each(Entry {
            path: index::display_name(&name),
            kind,
            size: if kind == Kind::File { entry.size() } else { 0 },
            mode: header.mode().unwrap_or(0) & 0o7777,
            mtime: header
                .mtime()
                .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
            link,
            offset: 0,
        })?;
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(fail)?;
    }
    Ok(())
}
