//! A store in a local directory: the default, needing no setup.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{ByteStream, Incomplete, ObjectMeta, Store, validate_key, validate_prefix};
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

/// Whose the store's files are. When root writes into a repository whose
/// directory another user owns (PostgreSQL's `wal-push` runs as
/// `postgres`, a base backup as root), what it makes is handed to that
/// user, so each can read and write what the other made (locks above all).
fn owner_of(root: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let md = fs::metadata(root).ok()?;
    (md.uid() != 0).then(|| (md.uid(), md.gid()))
}

/// Makes `dir` and what is missing above it (mode 0700), handed to `owner`.
fn make_dirs(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        make_dirs(parent, owner)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => match owner {
            Some((uid, gid)) => std::os::unix::fs::chown(dir, Some(uid), Some(gid)),
            None => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn create_temp(root: &Path, path: &Path) -> io::Result<(ObjectWriter, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let owner = owner_of(root);
    make_dirs(dir, owner)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    loop {
        let tmp = dir.join(format!(".{name}.{:016x}.partial", rand::random::<u64>()));
        match ObjectWriter::create(&tmp) {
            Ok(writer) => {
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
                }
                return Ok((writer, tmp));
            }
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

/// What [`walk`] finds: objects, and temporary files of unfinished writes.
#[derive(Default)]
struct Found {
    objects: Vec<(String, fs::Metadata)>,
    /// (key, temporary file's path relative to the root, metadata)
    partial: Vec<(String, String, fs::Metadata)>,
}

/// The key a temporary file `.NAME.RANDOM.partial` was writing.
fn partial_target(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('.')?.strip_suffix(".partial")?;
    let (target, random) = inner.rsplit_once('.')?;
    (random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()) && !target.is_empty())
        .then_some(target)
}

fn walk(dir: &Path, rel: &str, out: &mut Found) -> io::Result<()> {
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
        let join = |name: &str| {
            if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            }
        };
        // An entry can vanish between the directory read and the stat: a
        // concurrent write renamed its temporary file, or a prune removed
        // an object. Either way it is not there to list.
        let md = match entry.metadata() {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if name.starts_with('.') {
            // Temporary files of writes in progress (or killed).
            if let Some(target) = partial_target(&name).filter(|_| md.is_file()) {
                out.partial.push((join(target), join(&name), md));
            }
            continue;
        }
        let key = join(&name);
        if md.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if md.is_file() {
            out.objects.push((key, md));
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

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    async fn put(&self, key: &str, mut data: ByteStream) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let put_err = |e| self.err("put", key, e);
        let create = path.clone();
        let root = self.root.clone();
        let (mut writer, tmp) = blocking(move || create_temp(&root, &create))
            .await
            .map_err(put_err)?;
        // Held here, not on the write thread, so that a put dropped half-way
        // removes its temporary file at once; dropping `_abandon` also tells
        // the write thread to stop waiting for the stream.
        let mut guard = TempFile(Some(tmp.clone()));
        let (_abandon, mut abandoned) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Handle::current();
        let (store, owned_key) = (self.clone(), key.to_owned());
        // One blocking thread takes every chunk from the stream and writes
        // it: handing each chunk to the blocking pool instead cost two
        // thread wake-ups per chunk, which the pipeline waited for.
        let size = tokio::task::spawn_blocking(move || {
            let put_err = |e| store.err("put", &owned_key, e);
            loop {
                let next = runtime.block_on(async {
                    tokio::select! {
                        biased;
                        _ = &mut abandoned => None,
                        chunk = data.next() => Some(chunk),
                    }
                });
                match next {
                    None => return Err(Error::Interrupted("the put was abandoned".into())),
                    Some(None) => break,
                    Some(Some(chunk)) => writer.write(&chunk?).map_err(put_err)?,
                }
            }
            commit(writer, &tmp, &path).map_err(put_err)
        })
        .await
        .unwrap_or_else(|e| {
            Err(Error::Interrupted(format!(
                "the store's write thread failed: {e}"
            )))
        })?;
        guard.0 = None;
        Ok(ObjectMeta::written(key, size))
    }

    async fn put_new(&self, key: &str, data: Bytes) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        let size = blocking(move || {
            let (mut writer, tmp) = create_temp(&root, &path)?;
            let _remove = TempFile(Some(tmp.clone()));
            writer.write(&data)?;
            let (file, size) = writer.finish()?;
            file.sync_all()?;
            ObjectWriter::forget(&file);
            drop(file);
            // Unlike rename, a link fails when the name is taken.
            fs::hard_link(&tmp, &path)?;
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(size)
        })
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::exists(self.describe(), key),
            _ => self.err("put", key, e),
        })?;
        Ok(ObjectMeta::written(key, size))
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let path = self.path_of(key)?;
        let file = blocking(move || File::open(path))
            .await
            .map_err(|e| self.err("get", key, e))?;
        Ok(file_stream(file, self.describe(), key.to_owned()))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        use std::io::{Read, Seek};
        let path = self.path_of(key)?;
        let data = blocking(move || {
            let mut file = File::open(path)?;
            file.seek(io::SeekFrom::Start(start))?;
            let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(16 << 20));
            file.take(len).read_to_end(&mut data)?;
            Ok(data)
        })
        .await
        .map_err(|e| self.err("get", key, e))?;
        Ok(Bytes::from(data))
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
        let mut found = self.find(prefix).await?.objects;
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.iter().map(|(key, md)| meta(key, md)).collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        blocking(move || fs::remove_file(path))
            .await
            .map_err(|e| self.err("delete", key, e))
    }

    async fn incomplete(&self, prefix: &str) -> Result<Vec<Incomplete>> {
        let mut found = self.find(prefix).await?.partial;
        found.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(found
            .into_iter()
            .map(|(key, id, md)| Incomplete {
                key,
                id,
                started: md.modified().ok().map(DateTime::<Utc>::from),
            })
            .collect())
    }

    async fn abort(&self, upload: &Incomplete) -> Result<()> {
        // Only ever remove a temporary file of this store's own making.
        validate_key(&upload.id)?;
        let name = upload.id.rsplit('/').next().unwrap_or_default();
        if partial_target(name).is_none() {
            return Err(Error::InvalidKey {
                key: upload.id.clone(),
                reason: "not a temporary file of the local store",
            });
        }
        let path = self.root.join(&upload.id);
        blocking(move || fs::remove_file(path))
            .await
            .map_err(|e| self.err("abort", &upload.key, e))
    }
}

impl LocalStore {
    /// Objects and temporary files under `prefix`.
    async fn find(&self, prefix: &str) -> Result<Found> {
        validate_prefix(prefix)?;
        // Start the walk at the deepest directory the prefix names.
        let dir_rel = match prefix.rfind('/') {
            Some(i) => prefix[..i].to_owned(),
            None => String::new(),
        };
        let start = self.root.join(&dir_rel);
        let mut found = blocking(move || {
            let mut out = Found::default();
            walk(&start, &dir_rel, &mut out)?;
            Ok(out)
        })
        .await
        .map_err(|e| self.err("list", prefix, e))?;
        found.objects.retain(|(key, _)| key.starts_with(prefix));
        found.partial.retain(|(key, _, _)| key.starts_with(prefix));
        Ok(found)
    }
}
