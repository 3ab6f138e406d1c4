//! A store in an S3-compatible bucket (AWS S3, Cloudflare R2, Garage,
//! MinIO), with the `s3` feature.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinSet;

pub use super::location::S3Location;
use super::{ByteStream, Incomplete, ObjectMeta, Store, validate_key, validate_prefix};
use crate::error::{Error, Result};

/// The smallest part S3 accepts (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// The most parts one multipart upload may have.
const MAX_PARTS: i32 = 10_000;
/// Attempts per request, first try included.
const DEFAULT_ATTEMPTS: u32 = 10;

/// How an [`S3Store`] talks to its bucket.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Size of every multipart part but the last (default 16 MiB, at least
    /// 5 MiB). Objects up to this size are sent with one `PutObject`.
    pub part_size: usize,
    /// Parts uploaded (and ranges downloaded) at the same time (default 4).
    pub concurrency: usize,
    /// Path-style addressing (`endpoint/bucket/key`). `None` (the default)
    /// uses it exactly when a custom endpoint is configured, as Garage and
    /// MinIO need; virtual-hosted style (`bucket.endpoint/key`) otherwise.
    pub path_style: Option<bool>,
    /// Attempts per request, the first included (default 10), with
    /// exponential backoff for throttling, 5xx responses, timeouts and
    /// dropped connections.
    pub max_attempts: u32,
    /// Longest one attempt of one request may take before it is abandoned
    /// and retried (default 5 minutes: a 16 MiB part at 60 KiB/s), so a
    /// connection that goes silent never hangs a backup.
    pub attempt_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            part_size: 16 << 20,
            concurrency: 4,
            path_style: None,
            max_attempts: DEFAULT_ATTEMPTS,
            attempt_timeout: Duration::from_secs(300),
        }
    }
}

/// Objects in an S3-compatible bucket under a key prefix.
///
/// # Memory bound
///
/// `put` holds at most `part_size x (concurrency + 1)` bytes of object data,
/// plus one incoming chunk of the stream (the pipeline's frame, 512 KiB by
/// default): `concurrency` parts in flight, each kept until the store
/// acknowledges it so retries never re-read the source, and one part
/// being filled. `get` holds at most `part_size x (concurrency + 1)`: the
/// ranges fetched ahead of the reader and the one it is reading. With the
/// defaults (16 MiB parts, concurrency 4) that is 80 MiB either way.
///
/// # Atomicity
///
/// Objects up to one part go up in a single `PutObject`; larger ones as a
/// multipart upload of equal-sized parts (the last may be smaller) that
/// becomes visible only when completed. A failure that retries cannot fix
/// aborts the upload. A process killed mid-upload leaves an incomplete
/// multipart upload, invisible to readers, which [`Store::incomplete`] lists
/// and [`Store::abort`] removes (`backupctl gc`).
///
/// # Integrity
///
/// Every part and single upload carries a CRC32C checksum that the server
/// checks; the repository checks the SHA-256 of the whole stored object
/// against its manifest on restore and verify. Part bodies are sent as
/// SigV4 `UNSIGNED-PAYLOAD` (headers are still signed): signing them would
/// hash every byte with SHA-256 once more on each side, CPU the
/// compression needs, for no integrity the checksums do not already give.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    location: S3Location,
    opts: S3Options,
    described: Arc<str>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.location)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Connects with the standard AWS configuration chain: credentials from
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles
    /// (`AWS_PROFILE`, `~/.aws/config`), or the instance role; region from
    /// `AWS_REGION` or the profile (`us-east-1` when none is set); endpoint
    /// from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
    pub async fn connect(location: S3Location, opts: S3Options) -> Result<Self> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::from_sdk_config(&sdk, location, opts)
    }

    /// A store using an already-loaded AWS configuration.
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        location: S3Location,
        opts: S3Options,
    ) -> Result<Self> {
        if opts.part_size < MIN_PART_SIZE {
            return Err(Error::Config(format!(
                "S3 part size {} is below the 5 MiB minimum S3 accepts",
                opts.part_size
            )));
        }
        if opts.concurrency == 0 || opts.max_attempts == 0 {
            return Err(Error::Config(
                "S3 concurrency and attempts must be at least 1".into(),
            ));
        }
        let custom_endpoint = sdk.endpoint_url().is_some();
        let mut config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(opts.path_style.unwrap_or(custom_endpoint))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(opts.max_attempts)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            // Checksums are sent where we ask for them (parts and single
            // uploads), not on every request: several S3-compatible stores
            // reject the SDK's default trailing checksums on other calls.
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(opts.attempt_timeout)
                    .build(),
            )
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk.region().is_none() {
            config = config.region(Region::from_static("us-east-1"));
        }
        let described = match sdk.endpoint_url() {
            Some(endpoint) => format!("{location} at {endpoint}"),
            None => location.to_string(),
        };
        Ok(S3Store {
            client: Client::from_conf(config.build()),
            location,
            opts,
            described: described.into(),
        })
    }

    /// The bucket and prefix.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    fn full_key(&self, key: &str) -> String {
        if self.location.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.location.prefix)
        }
    }

    fn strip(&self, full: &str) -> Option<String> {
        if self.location.prefix.is_empty() {
            Some(full.to_owned())
        } else {
            full.strip_prefix(&self.location.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .map(str::to_owned)
        }
    }

    fn err<E>(&self, operation: &'static str, key: &str, e: SdkError<E>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let not_found = operation != "list"
            && (matches!(
                e.as_service_error().and_then(|s| s.code()),
                Some("NoSuchKey" | "NotFound")
            ) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404));
        if not_found {
            return Error::NotFound {
                store: self.describe(),
                key: key.to_owned(),
            };
        }
        Error::store(self.describe(), operation, key, describe_sdk_error(e))
    }

    /// Uploads `first` and the rest of `parts` as a multipart upload.
    async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        first: Bytes,
        parts: &mut PartReader,
    ) -> Result<u64> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.location.bucket)
            .key(full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await
            .map_err(|e| self.err("put", key, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                Error::store(
                    self.describe(),
                    "put",
                    key,
                    "CreateMultipartUpload returned no upload id",
                )
            })?
            .to_owned();
        match self.upload_parts(key, full, &upload_id, first, parts).await {
            Ok((completed, size)) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.location.bucket)
                    .key(full)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(completed))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| self.err("put", key, e))?;
                Ok(size)
            }
            Err(e) => {
                if let Err(abort) = self.abort_upload(full, &upload_id).await {
                    tracing::warn!(
                        "could not abort the multipart upload of {key} ({abort}); `backupctl gc` removes it"
                    );
                }
                Err(e)
            }
        }
    }

    /// Uploads parts with up to `concurrency` in flight while the next part
    /// fills. Returns the completed parts in order and the object size.
    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        first: Bytes,
        parts: &mut PartReader,
    ) -> Result<(Vec<CompletedPart>, u64)> {
        let mut in_flight: JoinSet<Result<CompletedPart>> = JoinSet::new();
        let mut done = Vec::new();
        let mut size = 0u64;
        let mut next = Some(first);
        let mut number = 0i32;
        loop {
            if next.is_none() && !parts.finished() && in_flight.len() < self.opts.concurrency {
                // Fill the next part while the others upload.
                next = parts.next_part().await?;
            }
            match next.take() {
                Some(body) if in_flight.len() < self.opts.concurrency => {
                    number += 1;
                    if number > MAX_PARTS {
                        return Err(Error::store(
                            self.describe(),
                            "put",
                            key,
                            format!(
                                "the object needs more than {MAX_PARTS} parts of {} bytes; raise the part size",
                                self.opts.part_size
                            ),
                        ));
                    }
                    size += body.len() as u64;
                    in_flight.spawn(self.clone().upload_part(
                        key.to_owned(),
                        full.to_owned(),
                        upload_id.to_owned(),
                        number,
                        body,
                        parts.pool.clone(),
                    ));
                }
                pending => {
                    next = pending;
                    match in_flight.join_next().await {
                        Some(joined) => done.push(joined.map_err(|e| {
                            Error::store(self.describe(), "put", key, e.to_string())
                        })??),
                        None => break,
                    }
                }
            }
        }
        done.sort_by_key(|p| p.part_number());
        Ok((done, size))
    }

    async fn upload_part(
        self,
        key: String,
        full: String,
        upload_id: String,
        number: i32,
        body: Bytes,
        pool: Pool,
    ) -> Result<CompletedPart> {
        let checksum = crc32c_base64(&body);
        let result = self
            .client
            .upload_part()
            .bucket(&self.location.bucket)
            .key(&full)
            .upload_id(&upload_id)
            .part_number(number)
            .content_length(body.len() as i64)
            .checksum_crc32_c(&checksum)
            .body(SdkBody::from(body.clone()))
            .customize()
            .disable_payload_signing()
            .send()
            .await;
        pool.give_back(body, self.opts.part_size);
        let out = result.map_err(|e| self.err("put", &key, e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_owned))
            .checksum_crc32_c(checksum)
            .build())
    }

    /// `HeadObject`: the object's metadata and ETag; errors are reported as
    /// part of `operation`.
    async fn stat(
        &self,
        operation: &'static str,
        key: &str,
    ) -> Result<(ObjectMeta, Option<String>)> {
        validate_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.err(operation, key, e))?;
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
            modified: out.last_modified().and_then(to_utc),
        };
        Ok((meta, out.e_tag().map(str::to_owned)))
    }

    async fn abort_upload(&self, full: &str, upload_id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.location.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.err("abort", full, e))?;
        Ok(())
    }

    /// One byte range of an object, read whole as the chunks that arrived
    /// (no copy into one buffer), retried as a whole when the connection
    /// drops mid-body, which the SDK does not retry.
    async fn get_range(
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

/// The SDK's `Display` for errors is terse ("service error"); this adds the
/// code, message and cause chain.
fn describe_sdk_error<E>(e: SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let mut text = match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => e.to_string(),
    };
    if let Some(status) = status {
        text.push_str(&format!(" (HTTP {status})"));
    }
    // A service error's code and message say it all; transport errors
    // (DNS, refused or reset connections, timeouts) need their causes.
    let mut source = match e.code() {
        Some(_) => None,
        None => std::error::Error::source(&e),
    };
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn crc32c_base64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc32c::crc32c(data).to_be_bytes())
}

fn to_utc(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Part buffers handed back once their upload is acknowledged, so an
/// upload allocates its `concurrency + 1` buffers once and reuses them
/// (allocating a fresh 16 MiB buffer per part fragments the heap and lets
/// the process's RSS drift above the bound).
#[derive(Clone, Default)]
struct Pool(Arc<std::sync::Mutex<Vec<BytesMut>>>);

impl Pool {
    fn take(&self, size: usize) -> BytesMut {
        let reused = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| BytesMut::with_capacity(size))
    }

    /// Takes `part` back if nothing else holds it any more.
    fn give_back(&self, part: Bytes, size: usize) {
        if let Ok(mut buf) = part.try_into_mut() {
            if buf.capacity() >= size {
                buf.clear();
                self.0.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
            }
        }
    }
}

/// Cuts a byte stream into parts of exactly `size` bytes (the last may be
/// shorter), holding at most one part plus one incoming chunk.
struct PartReader {
    stream: ByteStream,
    size: usize,
    leftover: Option<Bytes>,
    finished: bool,
    pool: Pool,
}

impl PartReader {
    fn new(stream: ByteStream, size: usize) -> Self {
        PartReader {
            stream,
            size,
            leftover: None,
            finished: false,
            pool: Pool::default(),
        }
    }

    fn finished(&self) -> bool {
        self.finished && self.leftover.is_none()
    }

    /// The next part, or `None` at the end of the stream.
    async fn next_part(&mut self) -> Result<Option<Bytes>> {
        let mut part = BytesMut::new();
        while part.len() < self.size {
            let chunk = match self.leftover.take() {
                Some(chunk) => chunk,
                None if self.finished => break,
                None => match self.stream.next().await {
                    Some(chunk) => chunk?,
                    None => {
                        self.finished = true;
                        break;
                    }
                },
            };
            if part.is_empty() && chunk.len() == self.size {
                return Ok(Some(chunk));
            }
            if part.capacity() == 0 {
                part = self.pool.take(self.size);
            }
            let room = self.size - part.len();
            if chunk.len() > room {
                self.leftover = Some(chunk.slice(room..));
                part.extend_from_slice(&chunk[..room]);
            } else {
                part.extend_from_slice(&chunk);
            }
        }
        Ok((!part.is_empty()).then(|| part.freeze()))
    }

    /// True when the stream has nothing after the current part. Reads at
    /// most one chunk ahead.
    async fn at_end(&mut self) -> Result<bool> {
        if self.leftover.is_some() {
            return Ok(false);
        }
        if self.finished {
            return Ok(true);
        }
        match self.stream.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                if !chunk.is_empty() {
                    self.leftover = Some(chunk);
                }
                Box::pin(self.at_end()).await
            }
            None => {
                self.finished = true;
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl Store for S3Store {
    fn describe(&self) -> String {
        self.described.to_string()
    }

    async fn put(&self, key: &str, data: ByteStream) -> Result<ObjectMeta> {
        validate_key(key)?;
        let full = self.full_key(key);
        let mut parts = PartReader::new(data, self.opts.part_size);
        let first = parts.next_part().await?.unwrap_or_default();
        let size = if parts.at_end().await? {
            let size = first.len() as u64;
            self.client
                .put_object()
                .bucket(&self.location.bucket)
                .key(&full)
                .content_length(first.len() as i64)
                .checksum_crc32_c(crc32c_base64(&first))
                .body(SdkBody::from(first))
                .customize()
                .disable_payload_signing()
                .send()
                .await
                .map_err(|e| self.err("put", key, e))?;
            size
        } else {
            self.put_multipart(key, &full, first, &mut parts).await?
        };
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
            modified: Some(Utc::now()),
        })
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let (meta, etag) = self.stat("get", key).await?;
        let size = meta.size;
        let part = self.opts.part_size as u64;
        let ranges = (0..size.div_ceil(part)).map(move |i| (i * part, part.min(size - i * part)));
        let store = self.clone();
        let key = key.to_owned();
        Ok(futures::stream::iter(ranges)
            .map(move |(start, len)| {
                store
                    .clone()
                    .get_range(key.clone(), etag.clone(), start, len)
            })
            .buffered(self.opts.concurrency)
            .map_ok(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        Ok(self.stat("head", key).await?.0)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.location.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages
            .try_next()
            .await
            .map_err(|e| self.err("list", prefix, e))?
        {
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| self.strip(k)) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key,
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                    modified: object.last_modified().and_then(to_utc),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        // S3 deletes missing keys without complaint; the trait promises
        // NotFound.
        self.head(key).await?;
        self.client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.err("delete", key, e))?;
        Ok(())
    }

    async fn incomplete(&self, prefix: &str) -> Result<Vec<Incomplete>> {
        validate_prefix(prefix)?;
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.location.bucket)
                .prefix(self.full_key(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.err("list", prefix, e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) =
                    (upload.key().and_then(|k| self.strip(k)), upload.upload_id())
                else {
                    continue;
                };
                out.push(Incomplete {
                    key,
                    id: id.to_owned(),
                    started: upload.initiated().and_then(to_utc),
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn abort(&self, upload: &Incomplete) -> Result<()> {
        validate_key(&upload.key)?;
        self.abort_upload(&self.full_key(&upload.key), &upload.id)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parts_are_equal_sized() {
        let chunks: Vec<Result<Bytes>> = [3usize, 7, 1, 0, 12, 5]
            .iter()
            .map(|&n| Ok(Bytes::from(vec![1u8; n])))
            .collect();
        let mut reader = PartReader::new(futures::stream::iter(chunks).boxed(), 5);
        let mut sizes = Vec::new();
        while let Some(part) = reader.next_part().await.expect("part") {
            sizes.push(part.len());
        }
        assert_eq!(sizes, vec![5, 5, 5, 5, 5, 3]);
        assert!(reader.at_end().await.expect("end"));
    }

    #[tokio::test]
    async fn at_end_sees_an_exact_fit() {
        let chunks: Vec<Result<Bytes>> = vec![Ok(Bytes::from(vec![0u8; 5])), Ok(Bytes::new())];
        let mut reader = PartReader::new(futures::stream::iter(chunks).boxed(), 5);
        assert_eq!(
            reader.next_part().await.expect("part").map(|p| p.len()),
            Some(5)
        );
        assert!(reader.at_end().await.expect("end"));
    }
}
