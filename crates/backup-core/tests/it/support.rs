//! Helpers shared by the integration tests.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use backup_core::store::ByteStream;
use backup_core::{
    BackupOptions, Identities, MemoryStore, Recipients, Repository, Result, Store, keys,
};
use bytes::Bytes;
use futures::StreamExt;

/// A multi-threaded runtime like the binaries use.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A fresh key pair.
pub(crate) fn key_pair() -> (Recipients, Identities) {
    let key = keys::generate();
    (
        Recipients::x25519([key.to_public()]),
        Identities::from_key(key),
    )
}

/// A repository in memory, with the store exposed for tampering.
pub(crate) fn memory_repo() -> (Repository, MemoryStore) {
    let store = MemoryStore::new();
    (Repository::new(Arc::new(store.clone())), store)
}

/// Backup options for `recipients` with default settings.
pub(crate) fn options(recipients: &Recipients) -> BackupOptions {
    BackupOptions::new(recipients.clone())
}

/// A reader that returns its data in the given read sizes (cycled), to
/// exercise every chunking of the input.
pub(crate) struct Chunked {
    pub data: Vec<u8>,
    pub pos: usize,
    pub sizes: Vec<usize>,
    pub turn: usize,
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = want.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A store that hands out `get` streams re-cut into the given chunk sizes,
/// to exercise every chunking on the way back.
#[derive(Debug)]
pub(crate) struct Rechunk {
    pub inner: Arc<dyn Store>,
    pub sizes: Vec<usize>,
}

/// A test store over `inner`: the methods given, and the rest passed on
/// to `inner` unchanged.
macro_rules! test_store {
    ($ty:ty, { $($methods:tt)* }) => {
        #[async_trait::async_trait]
        impl backup_core::Store for $ty {
            fn describe(&self) -> String {
                self.inner.describe()
            }
            async fn put(
                &self,
                key: &str,
                data: backup_core::store::ByteStream,
            ) -> backup_core::Result<backup_core::store::ObjectMeta> {
                self.inner.put(key, data).await
            }
            async fn head(
                &self,
                key: &str,
            ) -> backup_core::Result<backup_core::store::ObjectMeta> {
                self.inner.head(key).await
            }
            async fn list(
                &self,
                prefix: &str,
            ) -> backup_core::Result<Vec<backup_core::store::ObjectMeta>> {
                self.inner.list(prefix).await
            }
            async fn delete(&self, key: &str) -> backup_core::Result<()> {
                self.inner.delete(key).await
            }
            $($methods)*
        }
    };
}
pub(crate) use test_store;

test_store!(Rechunk, {
    async fn get(&self, key: &str) -> Result<ByteStream> {
        let mut whole = Vec::new();
        let mut s = self.inner.get(key).await?;
        while let Some(chunk) = s.next().await {
            whole.extend_from_slice(&chunk?);
        }
        let mut chunks = Vec::new();
        let (mut at, mut turn) = (0, 0);
        while at < whole.len() {
            let n = self.sizes[turn % self.sizes.len()]
                .max(1)
                .min(whole.len() - at);
            chunks.push(Ok(Bytes::copy_from_slice(&whole[at..at + n])));
            at += n;
            turn += 1;
        }
        Ok(futures::stream::iter(chunks).boxed())
    }
});

/// A `Write` target that can be read after the restore moved it away.
#[derive(Clone, Default)]
pub(crate) struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// SHA-256 of `data`, as the manifest type.
pub(crate) fn sha256(data: &[u8]) -> backup_core::manifest::Sha256 {
    use sha2::Digest;
    backup_core::manifest::Sha256(sha2::Sha256::digest(data).into())
}
