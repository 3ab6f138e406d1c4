//! A store in an S3-compatible bucket (AWS S3, Cloudflare R2, Garage,
//! MinIO), with the `s3` feature.

//!
//! This file is the store itself and its [`Store`] methods; the rest is
//! split by what it does: [`options`] (settings and their bounds),
//! `multipart` (uploads), `download` (ranged reads) and `errors`
//! (mapping the SDK's errors onto the crate's).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

pub use super::location::S3Location;
use super::{ByteStream, Incomplete, ObjectMeta, Store, validate_key, validate_prefix};
use crate::error::Result;

mod download;
mod errors;
mod multipart;
pub mod options;

use multipart::{PartReader, crc32c_base64};
pub use options::{MIN_PART_SIZE, S3Options};

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
/// and [`Store::abort`] removes (`Repository::gc`).
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
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) when `opts` is
    /// out of range.
    pub async fn connect(location: S3Location, opts: S3Options) -> Result<Self> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::from_sdk_config(&sdk, location, opts)
    }

    /// A store using an already-loaded AWS configuration.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn from_sdk_config(
        sdk: &aws_config::SdkConfig,
        location: S3Location,
        opts: S3Options,
    ) -> Result<Self> {
        opts.check()?;
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

    /// One `PutObject` of a whole object; with `create_only`, refused (412)
    /// where the server honours `If-None-Match`.
    async fn put_one(
        &self,
        full: &str,
        body: bytes::Bytes,
        create_only: bool,
    ) -> std::result::Result<
        aws_sdk_s3::operation::put_object::PutObjectOutput,
        aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
    > {
        self.client
            .put_object()
            .bucket(&self.location.bucket)
            .key(full)
            .set_if_none_match(create_only.then(|| "*".to_owned()))
            .content_length(body.len() as i64)
            .checksum_crc32_c(crc32c_base64(&body))
            .body(SdkBody::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
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
}

fn to_utc(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
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
            self.put_one(&full, first, false)
                .await
                .map_err(|e| self.err("put", key, e))?;
            size
        } else {
            self.put_multipart(key, &full, first, &mut parts).await?
        };
        Ok(ObjectMeta::written(key, size))
    }

    async fn put_new(&self, key: &str, data: bytes::Bytes) -> Result<ObjectMeta> {
        validate_key(key)?;
        // Servers that ignore `If-None-Match` on PUT (Garage 2.5 reads it
        // only on GET) still refuse a key taken before this call.
        match self.head(key).await {
            Ok(_) => return Err(crate::Error::exists(self.describe(), key)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let size = data.len() as u64;
        self.put_one(&self.full_key(key), data, true)
            .await
            .map_err(|e| {
                // 412: the key is taken; 409: a write to it raced this one.
                match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(412 | 409) => crate::Error::exists(self.describe(), key),
                    _ => self.err("put", key, e),
                }
            })?;
        Ok(ObjectMeta::written(key, size))
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
                    .fetch_range(key.clone(), etag.clone(), start, len)
            })
            .buffered(self.opts.concurrency)
            .map_ok(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
            .try_flatten()
            .boxed())
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<bytes::Bytes> {
        let (meta, etag) = self.stat("get", key).await?;
        let len = len.min(meta.size.saturating_sub(start));
        if len == 0 {
            return Ok(bytes::Bytes::new());
        }
        let chunks = self
            .clone()
            .fetch_range(key.to_owned(), etag, start, len)
            .await?;
        Ok(chunks.concat().into())
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
