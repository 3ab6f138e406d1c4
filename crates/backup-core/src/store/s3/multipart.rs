//! Uploads: one `PutObject` for small objects, else a multipart upload of
//! equal parts with at most `concurrency` in flight, aborted when it
//! fails.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::S3Store;
use super::options::MAX_PARTS;
use crate::error::{Error, Result};
use crate::store::{ByteStream, Store};

impl S3Store {
    /// Uploads `first` and the rest of `parts` as a multipart upload.
    pub(super) async fn put_multipart(
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
                        "could not abort the multipart upload of {key} ({abort}); a garbage collection of the repository removes it"
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

    /// Aborts a multipart upload.
    pub(super) async fn abort_upload(&self, full: &str, upload_id: &str) -> Result<()> {
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
}

/// The CRC32C of `data` as S3 headers carry it.
pub(super) fn crc32c_base64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(crc32c::crc32c(data).to_be_bytes())
}

/// Part buffers handed back once their upload is acknowledged, so an
/// upload allocates its `concurrency + 1` buffers once and reuses them
/// (allocating a fresh 16 MiB buffer per part fragments the heap and lets
/// the process's RSS drift above the bound).
#[derive(Clone, Default)]
pub(super) struct Pool(Arc<std::sync::Mutex<Vec<BytesMut>>>);

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
pub(super) struct PartReader {
    stream: ByteStream,
    size: usize,
    leftover: Option<Bytes>,
    finished: bool,
    pub(super) pool: Pool,
}

impl PartReader {
    pub(super) fn new(stream: ByteStream, size: usize) -> Self {
        PartReader {
            stream,
            size,
            leftover: None,
            finished: false,
            pool: Pool::default(),
        }
    }

    pub(super) fn finished(&self) -> bool {
        self.finished && self.leftover.is_none()
    }

    /// The next part, or `None` at the end of the stream.
    pub(super) async fn next_part(&mut self) -> Result<Option<Bytes>> {
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
    pub(super) async fn at_end(&mut self) -> Result<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

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
