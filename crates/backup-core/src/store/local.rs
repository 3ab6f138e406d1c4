//! A store in a local directory: the default, needing no setup.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{ByteStream, ObjectMeta, Store, validate_key, validate_prefix};
use writer::ObjectWriter;

mod writer;
use crate::error::{Error, Result};

/// Bytes read per chunk by [`LocalStore::get`].
const READ_CHUNK: usize = 1 << 20;

/// Objects as files under a root directory, keys mapped to relative paths.
///
/// `put` writes to a hidden temporary file next to the target
/// (`.NAME.RANDOM.partial`), fsyncs it, renames it into place and fsyncs the
/// directory, so an object is either complete or absent, even across a
/// crash. Writeback is started as the data arrives and written data is
/// dropped from the page cache, so a backup neither evicts the host's cached
/// data (the services' hot data) nor leaves a large flush for the final
/// fsync. A `put` that fails removes its temporary file; one killed with the
/// process leaves it behind, hidden from [`Store::list`], for garbage
/// collection to remove. Key segments starting with `.` are reserved for
/// these temporary files and rejected.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`. Nothing is touched until the first write,
    /// which creates the directory (mode 0700) if it is missing.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        if key.split('/').any(|seg| seg.starts_with('.')) {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason: "segments starting with `.` are reserved by the local store",
            });
        }
        Ok(self.root.join(key))
    }

    fn err(&self, operation: &'static str, key: &str, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound && operation != "put" && operation != "list" {
            Error::NotFound {
                store: self.describe(),
                key: key.to_owned(),
            }
        } else {
            Error::store(self.describe(), operation, key, e)
        }
    }
}

/// Removes a temporary file unless disarmed, so a failed or cancelled `put`
/// leaves nothing behind.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

fn create_temp(path: &Path) -> io::Result<(ObjectWriter, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    loop {
        let tmp = dir.join(format!(".{name}.{:016x}.partial", rand::random::<u64>()));
        match ObjectWriter::create(&tmp) {
            Ok(writer) => return Ok((writer, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn commit(writer: ObjectWriter, tmp: &Path, path: &Path) -> io::Result<u64> {
    let (file, size) = writer.finish()?;
    file.sync_all()?;
    ObjectWriter::forget(&file);
    drop(file);
    fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(size)
}

fn meta(key: &str, md: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: md.len(),
        modified: md.modified().ok().map(DateTime::<Utc>::from),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, fs::Metadata)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not a key this store could have written
        };
        if name.starts_with('.') {
            continue; // temporary files of writes in progress
        }
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let md = entry.metadata()?;
        if md.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if md.is_file() {
            out.push((key, md));
        }
    }
    Ok(())
}

/// Streams a file's bytes in 1 MiB chunks read on the blocking pool; errors
/// name `store` and `key`.
pub(crate) fn file_stream(file: File, store: String, key: String) -> ByteStream {
    futures::stream::try_unfold(Some(file), move |file| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            let Some(file) = file else { return Ok(None) };
            let read = blocking(move || {
                let mut buf = Vec::with_capacity(READ_CHUNK);
                let mut file = file;
                (&mut file).take(READ_CHUNK as u64).read_to_end(&mut buf)?;
                Ok((buf, file))
            });
            match read.await {
                Ok((buf, _)) if buf.is_empty() => Ok(None),
                Ok((buf, file)) => Ok(Some((Bytes::from(buf), Some(file)))),
                Err(e) => Err(Error::store(store, "get", key, e)),
            }
        }
    })
    .boxed()
}

#[async_trait]
impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    async fn put(&self, key: &str, mut data: ByteStream) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let target = path.clone();
        let (mut writer, tmp) = blocking(move || create_temp(&target))
            .await
            .map_err(|e| self.err("put", key, e))?;
        let mut guard = TempFile(Some(tmp.clone()));
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            writer = blocking(move || writer.write(&chunk).map(|()| writer))
                .await
                .map_err(|e| self.err("put", key, e))?;
        }
        let size = blocking(move || commit(writer, &tmp, &path))
            .await
            .map_err(|e| self.err("put", key, e))?;
        guard.0 = None;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
            modified: Some(Utc::now()),
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let path = self.path_of(key)?;
        let file = blocking(move || File::open(path))
            .await
            .map_err(|e| self.err("get", key, e))?;
        Ok(file_stream(file, self.describe(), key.to_owned()))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let md = blocking(move || fs::metadata(path))
            .await
            .map_err(|e| self.err("head", key, e))?;
        if !md.is_file() {
            return Err(self.err("head", key, io::ErrorKind::NotFound.into()));
        }
        Ok(meta(key, &md))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        // Start the walk at the deepest directory the prefix names.
        let dir_rel = match prefix.rfind('/') {
            Some(i) => prefix[..i].to_owned(),
            None => String::new(),
        };
        let start = self.root.join(&dir_rel);
        let mut found = blocking(move || {
            let mut out = Vec::new();
            walk(&start, &dir_rel, &mut out)?;
            Ok(out)
        })
        .await
        .map_err(|e| self.err("list", prefix, e))?;
        found.retain(|(key, _)| key.starts_with(prefix));
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.iter().map(|(key, md)| meta(key, md)).collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        blocking(move || fs::remove_file(path))
            .await
            .map_err(|e| self.err("delete", key, e))
    }
}
