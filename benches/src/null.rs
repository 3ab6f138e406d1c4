//! A store that keeps nothing: isolates the pipeline from storage costs.

use async_trait::async_trait;
use backup_core::store::{ByteStream, ObjectMeta};
use backup_core::{Error, Result, Store};
use futures::StreamExt;

/// Accepts every `put`, counts the bytes and throws them away.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

#[async_trait]
impl Store for NullStore {
    fn describe(&self) -> String {
        "null store".into()
    }
    async fn put(&self, key: &str, mut data: ByteStream) -> Result<ObjectMeta> {
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            size += chunk?.len() as u64;
        }
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
            modified: None,
        })
    }
    async fn get(&self, key: &str) -> Result<ByteStream> {
        Err(self.missing(key))
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        Err(self.missing(key))
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ObjectMeta>> {
        Ok(Vec::new())
    }
    async fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }
}

impl NullStore {
    fn missing(&self, key: &str) -> Error {
        Error::NotFound {
            store: self.describe(),
            key: key.to_owned(),
        }
    }
}
