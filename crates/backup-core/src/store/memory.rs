//! A store in memory, for tests and for embedding callers that want one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::{ByteStream, ObjectMeta, Store, validate_key, validate_prefix};
use crate::error::{Error, Result};

type Objects = BTreeMap<String, (Bytes, DateTime<Utc>)>;

/// Objects in a map in memory. Clones share the same objects.
///
/// `put` collects the whole stream before inserting, so it is atomic like
/// every store, and holds the whole object in memory: use it for tests and
/// small data, not for real backups.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<Objects>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> MutexGuard<'_, Objects> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every mutation is a single insert or remove), so poisoning is moot.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(&self, key: &str) -> Error {
        Error::NotFound {
            store: self.describe(),
            key: key.to_owned(),
        }
    }

    /// Replaces an object's bytes directly, bypassing `put`: lets tests
    /// simulate damage done to stored data.
    pub fn overwrite(&self, key: &str, data: Bytes) {
        self.objects().insert(key.to_owned(), (data, Utc::now()));
    }
}

fn meta(key: &str, data: &Bytes, modified: DateTime<Utc>) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: data.len() as u64,
        modified: Some(modified),
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn describe(&self) -> String {
        "memory store".to_owned()
    }

    async fn put(&self, key: &str, mut data: ByteStream) -> Result<ObjectMeta> {
        validate_key(key)?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = data.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let (data, now) = (buf.freeze(), Utc::now());
        let meta = meta(key, &data, now);
        self.objects().insert(key.to_owned(), (data, now));
        Ok(meta)
    }

    async fn put_new(&self, key: &str, data: Bytes) -> Result<ObjectMeta> {
        validate_key(key)?;
        let now = Utc::now();
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return Err(Error::exists(self.describe(), key));
        }
        let meta = meta(key, &data, now);
        objects.insert(key.to_owned(), (data, now));
        Ok(meta)
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        validate_key(key)?;
        let data = self.objects().get(key).map(|(d, _)| d.clone());
        let data = data.ok_or_else(|| self.not_found(key))?;
        // Hand out bounded chunks, like a real store would.
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(64 << 10)
            .map(|i| Ok(data.slice(i..data.len().min(i + (64 << 10)))))
            .collect();
        Ok(futures::stream::iter(chunks).boxed())
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Bytes> {
        validate_key(key)?;
        let data = self.objects().get(key).map(|(d, _)| d.clone());
        let data = data.ok_or_else(|| self.not_found(key))?;
        let from = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
        let to = usize::try_from(start.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(data.len());
        Ok(data.slice(from..to))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let objects = self.objects();
        let (data, modified) = objects.get(key).ok_or_else(|| self.not_found(key))?;
        Ok(meta(key, data, *modified))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        Ok(self
            .objects()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (d, m))| meta(k, d, *m))
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self.objects().remove(key) {
            Some(_) => Ok(()),
            None => Err(self.not_found(key)),
        }
    }
}
