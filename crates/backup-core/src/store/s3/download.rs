//! Downloads: an object read as consecutive byte ranges, `concurrency`
//! ahead of the reader, each retried whole when its connection drops.

use std::time::Duration;

use bytes::Bytes;

use super::S3Store;
use crate::error::{Error, Result};
use crate::store::Store;

impl S3Store {
    /// One byte range of an object, read whole as the chunks that arrived
    /// (no copy into one buffer), retried as a whole when the connection
    /// drops mid-body, which the SDK does not retry.
    pub(super) async fn fetch_range(
        self,
        key: String,
        etag: Option<String>,
        start: u64,
        len: u64,
    ) -> Result<Vec<Bytes>> {
        let full = self.full_key(&key);
        let mut attempt = 1;
        loop {
            let result = async {
                let mut out = self
                    .client
                    .get_object()
                    .bucket(&self.location.bucket)
                    .key(&full)
                    .range(format!("bytes={start}-{}", start + len - 1))
                    .set_if_match(etag.clone())
                    .send()
                    .await
                    .map_err(|e| Fetch::Fatal(self.err("get", &key, e)))?;
                let mut chunks = Vec::new();
                let mut got = 0u64;
                while let Some(chunk) = out
                    .body
                    .try_next()
                    .await
                    .map_err(|e| Fetch::Retry(e.to_string()))?
                {
                    got += chunk.len() as u64;
                    chunks.push(chunk);
                }
                if got != len {
                    return Err(Fetch::Retry(format!(
                        "range at {start} returned {got} bytes, expected {len}"
                    )));
                }
                Ok(chunks)
            }
            .await;
            match result {
                Ok(chunks) => return Ok(chunks),
                Err(Fetch::Fatal(e)) => return Err(e),
                Err(Fetch::Retry(why)) if attempt >= self.opts.max_attempts => {
                    return Err(Error::store(self.describe(), "get", &key, why));
                }
                Err(Fetch::Retry(why)) => {
                    tracing::debug!("retrying range {start} of {key}: {why}");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

enum Fetch {
    Retry(String),
    Fatal(Error),
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64 << attempt.min(7)).min(Duration::from_secs(10))
}
