//! Where backups live: the [`Store`] trait and its implementations.
//!
//! A store holds opaque objects under `/`-separated keys. It knows nothing
//! about backups; the [`Repository`](crate::Repository) decides the layout.
//! Every store gives the same guarantee for [`Store::put`]: an object either
//! appears complete or not at all. A stream that ends with an error, or a
//! `put` future that is dropped, never leaves a visible object.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::error::{Error, Result};

mod local;
mod location;
mod memory;
#[cfg(feature = "s3")]
pub mod s3;

pub use local::LocalStore;
pub(crate) use local::file_stream;
pub use location::S3Location;
pub use memory::MemoryStore;
#[cfg(feature = "s3")]
pub use s3::{S3Options, S3Store};

/// A stream of object bytes. Chunk boundaries carry no meaning.
///
/// When a producer fails it yields an `Err` item; a store receiving one in
/// [`Store::put`] discards what it has written and returns that error.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, if the store knows.
    pub modified: Option<DateTime<Utc>>,
}

impl ObjectMeta {
    /// What a store knows of an object it just wrote.
    pub fn written(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size,
            modified: Some(Utc::now()),
        }
    }
}

/// A write that was started and never finished: a multipart upload left by
/// a killed process, or a local temporary file. Invisible to readers;
/// listed by [`Store::incomplete`] and removed by [`Store::abort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    /// The key the write was for.
    pub key: String,
    /// The store's handle for it (an upload id, a temporary file name).
    pub id: String,
    /// When it was started, if the store knows.
    pub started: Option<DateTime<Utc>>,
}

/// Object storage for backups: a local directory, memory, or (with the
/// `s3` feature) an S3-compatible bucket.
///
/// Implementations must make `put` atomic (all or nothing) and must return
/// [`Error::NotFound`] for a missing key in `get`, `head` and `delete`.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// A short human description used in messages, e.g. `local directory /srv/backups`.
    fn describe(&self) -> String;

    /// The directory the store keeps its objects in, for a store on the
    /// local file system: a backup of a tree that holds it leaves it out.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }

    /// Stores `data` under `key`, replacing any existing object, and returns
    /// the new object's metadata. Atomic: readers see the old object or the
    /// complete new one.
    async fn put(&self, key: &str, data: ByteStream) -> Result<ObjectMeta>;

    /// Stores a small object only if nothing is stored under `key` yet:
    /// [`Error::Exists`] when something is. Atomic where the store can make
    /// it so: the local directory (a hard link that fails when the name is
    /// taken), memory, and S3 servers that honour `If-None-Match: *` (AWS
    /// S3, R2, MinIO). Elsewhere the default looks first, then writes: two
    /// writers racing for one key can both succeed, the second replacing
    /// the first.
    async fn put_new(&self, key: &str, data: Bytes) -> Result<ObjectMeta> {
        match self.head(key).await {
            Ok(_) => Err(Error::exists(self.describe(), key)),
            Err(e) if e.is_not_found() => {
                self.put(key, futures::stream::once(async move { Ok(data) }).boxed())
                    .await
            }
            Err(e) => Err(e),
        }
    }

    /// Streams an object's bytes.
    async fn get(&self, key: &str) -> Result<ByteStream>;

    /// Reads `len` bytes of an object from `start` (fewer where it ends
    /// first): a ranged read where the store has them. The default reads
    /// from the start and skips.
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        let mut stream = self.get(key).await?;
        let mut out = BytesMut::new();
        let mut at = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let (from, to) = (at, at + chunk.len() as u64);
            at = to;
            if to <= start {
                continue;
            }
            let lo = start.saturating_sub(from) as usize;
            let hi = (start + len).min(to).saturating_sub(from) as usize;
            out.extend_from_slice(&chunk[lo..hi.max(lo)]);
            if at >= start + len {
                break;
            }
        }
        Ok(out.freeze())
    }

    /// An object's metadata.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// All objects whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Deletes an object.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Writes under `prefix` that were started and never finished. Stores
    /// whose writes cannot be left half-done return nothing.
    async fn incomplete(&self, _prefix: &str) -> Result<Vec<Incomplete>> {
        Ok(Vec::new())
    }

    /// Discards an unfinished write found by [`Store::incomplete`].
    async fn abort(&self, _upload: &Incomplete) -> Result<()> {
        Ok(())
    }
}

/// Conveniences over any [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// Stores a small object held in memory.
    async fn put_bytes(&self, key: &str, data: Bytes) -> Result<ObjectMeta> {
        self.put(key, futures::stream::once(async move { Ok(data) }).boxed())
            .await
    }

    /// Reads a whole object into memory, refusing objects larger than `limit`
    /// bytes (manifests are small; a huge one is damage or an attack).
    async fn get_bytes(&self, key: &str, limit: u64) -> Result<Bytes> {
        let mut stream = self.get(key).await?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(Error::store(
                    self.describe(),
                    "get",
                    key,
                    format!("object is larger than the {limit} bytes allowed for it"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// `Arc<S>` and `Box<S>` are stores too, so `Arc<dyn Store>` can be passed
/// wherever a store is expected.
macro_rules! forward_store {
    ($($wrapper:ident),*) => {$(
        #[async_trait]
        impl<S: Store + ?Sized> Store for $wrapper<S> {
            fn describe(&self) -> String {
                (**self).describe()
            }
            async fn put(&self, key: &str, data: ByteStream) -> Result<ObjectMeta> {
                (**self).put(key, data).await
            }
            async fn put_new(&self, key: &str, data: Bytes) -> Result<ObjectMeta> {
                (**self).put_new(key, data).await
            }
            async fn get(&self, key: &str) -> Result<ByteStream> {
                (**self).get(key).await
            }
            async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
                (**self).get_range(key, start, len).await
            }
            async fn head(&self, key: &str) -> Result<ObjectMeta> {
                (**self).head(key).await
            }
            async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
                (**self).list(prefix).await
            }
            async fn delete(&self, key: &str) -> Result<()> {
                (**self).delete(key).await
            }
            async fn incomplete(&self, prefix: &str) -> Result<Vec<Incomplete>> {
                (**self).incomplete(prefix).await
            }
            async fn abort(&self, upload: &Incomplete) -> Result<()> {
                (**self).abort(upload).await
            }
        }
    )*};
}

forward_store!(Arc, Box);

/// Opens the store a repository location names: a local directory, or
/// `s3://BUCKET/PREFIX` with default S3 settings (credentials, region and
/// endpoint from the standard AWS configuration).
///
/// # Errors
///
/// [`Error::InvalidLocation`] for an `s3://` location without a bucket,
/// [`Error::Unsupported`] for S3 in a build without the `s3` feature, and
/// S3 set-up errors.
pub async fn open(location: &str) -> Result<Arc<dyn Store>> {
    #[cfg(feature = "s3")]
    {
        open_with(location, S3Options::default()).await
    }
    #[cfg(not(feature = "s3"))]
    {
        if !location.starts_with("s3://") {
            return Ok(Arc::new(LocalStore::new(location)));
        }
        let parsed: S3Location = location.parse()?;
        Err(Error::Unsupported {
            what: parsed.to_string(),
            feature: "s3",
        })
    }
}

/// [`open`] with S3 settings.
///
/// # Errors
///
/// As [`open`], and when the settings are out of range.
#[cfg(feature = "s3")]
pub async fn open_with(location: &str, s3: S3Options) -> Result<Arc<dyn Store>> {
    if !location.starts_with("s3://") {
        return Ok(Arc::new(LocalStore::new(location)));
    }
    Ok(Arc::new(S3Store::connect(location.parse()?, s3).await?))
}

/// Checks that `key` is a relative, `/`-separated key every backend can hold:
/// non-empty segments, no `.` or `..`, no NUL or backslash, at most 1024 bytes.
///
/// # Errors
///
/// [`Error::InvalidKey`] saying what is wrong with it.
pub fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        Some("empty key")
    } else if key.len() > 1024 {
        Some("longer than 1024 bytes")
    } else if key.contains('\0') || key.contains('\\') {
        Some("contains NUL or backslash")
    } else if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        Some("empty, `.` or `..` path segment (or a leading or trailing `/`)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidKey {
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a list prefix: empty, or a valid key optionally ending in `/`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" => Ok(()),
        p => validate_key(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for good in ["a", "data/x.age", "manifests/2026/x.json", "a-b_c.d"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "../a", "a/./b", "a\\b", "a\0b"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("data/").is_ok());
        assert!(validate_prefix("../").is_err());
    }
}
