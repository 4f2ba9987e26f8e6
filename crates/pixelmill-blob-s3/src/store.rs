//! `S3BlobStore`: blobs as objects of one bucket, the object key being the blob key.
//!
//! S3 has no rename, and a streamed write learns its key (the content's hash) only at the end. A
//! writer therefore holds at most one part (`part_size`) in memory: a body that fits is one PUT
//! under its final key at commit; a larger one goes up as a multipart upload under
//! `.staging/<random>` and, once complete, is copied server-side to its key and the staging object
//! deleted. A multipart upload is invisible until completed, and is aborted on any error, on
//! `abort` and on drop; what a crash leaves under `.staging/` is swept at start-up once older than
//! any write in flight. Blob keys never start with '.', so staging never meets a key.
//!
//! Integrity: the SDK sends a CRC32 with every PUT and part, which the server checks; an original
//! (`orig/<sha256>`) is refused at commit unless its bytes hash to its key, and checked again when
//! read whole.

use crate::config::S3Config;
use crate::error::{classify, is_not_found, is_unsatisfiable_range};
use async_trait::async_trait;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use bytes::Bytes;
use futures::StreamExt;
use pixelmill_blob::{
    checked_key, BlobError, BlobMeta, BlobRead, BlobResult, BlobStore, BlobWriter,
};
use pixelmill_core::BlobKey;
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const STAGING_PREFIX: &str = ".staging/";
/// Staging older than this at start-up belongs to a write that died: no write takes an hour.
const STALE_STAGING: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    bucket: String,
    part_size: usize,
}

/// What `sweep_staging` removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub aborted_uploads: usize,
    pub deleted_objects: usize,
}

impl S3BlobStore {
    /// Connects, checks the bucket (creating it when the config allows) and sweeps stale staging.
    pub async fn open(config: S3Config) -> BlobResult<Self> {
        let store = Self::remote(config.clone());
        store.ensure_bucket(config.create_bucket).await?;
        let swept = store.sweep_staging(STALE_STAGING).await?;
        if swept != Swept::default() {
            tracing::info!(?swept, bucket = %config.bucket, "removed staging left by interrupted writes");
        }
        Ok(store)
    }

    /// A store on another region's bucket: the client only, with no request at construction, so
    /// a node starts while that region is down. Its own region's nodes check and sweep it.
    pub fn remote(config: S3Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: client(&config),
                bucket: config.bucket,
                part_size: config.part_size,
            }),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// The underlying client, for tools that look past the `BlobStore` trait (tests, audits).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    async fn ensure_bucket(&self, create: bool) -> BlobResult<()> {
        let bucket = &self.inner.bucket;
        let head = self.inner.client.head_bucket().bucket(bucket).send().await;
        match head {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) && create => {
                let created = self
                    .inner
                    .client
                    .create_bucket()
                    .bucket(bucket)
                    .send()
                    .await;
                match created {
                    Ok(_) => Ok(()),
                    // Another node of the region created it in the meantime.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(classify(e, &format!("creating bucket {bucket}"))),
                }
            }
            Err(e) if is_not_found(&e) => Err(BlobError::Refused(format!(
                "bucket {bucket} does not exist; create it or allow create_bucket=true"
            ))),
            Err(e) => Err(classify(
                e,
                &format!("checking bucket {bucket} (are the endpoint and credentials right?)"),
            )),
        }
    }

    /// Removes staging objects and aborts multipart uploads under `.staging/` begun more than
    /// `older_than` ago. Younger ones may be other nodes' writes in flight and are left alone.
    pub async fn sweep_staging(&self, older_than: Duration) -> BlobResult<Swept> {
        let cutoff_ms = now_ms() - older_than.as_millis() as i64;
        let client = &self.inner.client;
        let bucket = &self.inner.bucket;
        let mut swept = Swept::default();
        // ListMultipartUploads has no paginator in the SDK: page by its two markers. No `prefix`:
        // MinIO lists nothing for a prefix that is not a whole key (minio/minio#20989).
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = client
                .list_multipart_uploads()
                .bucket(bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| classify(e, "listing staged multipart uploads"))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if !key.starts_with(STAGING_PREFIX) {
                    continue;
                }
                if upload.initiated().map_or(i64::MAX, millis) < cutoff_ms {
                    abort_upload(&self.inner, key, id).await?;
                    swept.aborted_uploads += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
        }
        for key in self.list(STAGING_PREFIX, cutoff_ms, usize::MAX).await? {
            self.delete_object(&key).await?;
            swept.deleted_objects += 1;
        }
        Ok(swept)
    }

    /// Up to `limit` object keys directly under `prefix`, last modified before `before_ms`.
    async fn list(&self, prefix: &str, before_ms: i64, limit: usize) -> BlobResult<Vec<String>> {
        let mut found = Vec::new();
        let mut pages = self
            .inner
            .client
            .list_objects_v2()
            .bucket(&self.inner.bucket)
            .prefix(prefix)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(e, &format!("listing {prefix}")))?;
            for object in page.contents() {
                let written = object.last_modified().map_or(i64::MAX, millis);
                if let (Some(key), true) = (object.key(), written < before_ms) {
                    found.push(key.to_owned());
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(found)
    }

    async fn delete_object(&self, key: &str) -> BlobResult<()> {
        let deleted = self
            .inner
            .client
            .delete_object()
            .bucket(&self.inner.bucket)
            .key(key)
            .send()
            .await;
        deleted
            .map(drop)
            .map_err(|e| classify(e, &format!("deleting {key}")))
    }

    async fn put_object(&self, key: &str, data: Bytes) -> BlobResult<()> {
        let put = self
            .inner
            .client
            .put_object()
            .bucket(&self.inner.bucket)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await;
        put.map(drop)
            .map_err(|e| classify(e, &format!("writing {key}")))
    }
}

fn client(config: &S3Config) -> Client {
    let credentials = aws_sdk_s3::config::Credentials::new(
        &config.credentials.access_key_id,
        &config.credentials.secret_access_key,
        None,
        None,
        "pixelmill",
    );
    let retry = RetryConfig::standard()
        .with_max_attempts(config.max_attempts)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(2));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_attempt_timeout(config.attempt_timeout)
        .build();
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(https)
        .region(Region::new(config.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(config.path_style)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn millis(time: &aws_sdk_s3::primitives::DateTime) -> i64 {
    time.to_millis().unwrap_or(i64::MAX)
}

/// `Corrupt` unless `key` is not an original or `sha256` (called only for originals, so outputs
/// and renditions are never hashed) gives its address.
fn check_address(key: &BlobKey, sha256: impl FnOnce() -> [u8; 32]) -> BlobResult<()> {
    let Some(address) = key.as_str().strip_prefix("orig/") else {
        return Ok(());
    };
    let actual = hex::encode(sha256());
    if address == actual {
        Ok(())
    } else {
        Err(BlobError::Corrupt {
            key: key.to_string(),
            detail: format!("its bytes hash to {actual}"),
        })
    }
}

/// A GET's whole body; a connection lost part-way is retryable.
async fn collect_body(body: ByteStream, key: &BlobKey) -> BlobResult<Bytes> {
    let collected = body.collect().await;
    collected
        .map(|data| data.into_bytes())
        .map_err(|e| BlobError::Unavailable(format!("reading {key}: {e}")))
}

/// The HTTP `Range` for a non-empty half-open range. An end past what S3 takes as a number is
/// "to the end" (MinIO ignores a header with a 64-bit end and sends the whole object).
fn range_header(range: &Range<u64>) -> String {
    if range.end > i64::MAX as u64 {
        format!("bytes={}-", range.start)
    } else {
        format!("bytes={}-{}", range.start, range.end - 1)
    }
}

async fn abort_upload(inner: &Inner, key: &str, upload_id: &str) -> BlobResult<()> {
    let aborted = inner
        .client
        .abort_multipart_upload()
        .bucket(&inner.bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match aborted {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(classify(e, &format!("aborting the upload of {key}"))),
    }
}

/// A multipart upload under a staging key, and the parts sent so far.
struct Multipart {
    staging_key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

struct S3BlobWriter {
    store: S3BlobStore,
    /// The part being filled; never more than `part_size` bytes.
    buffer: Vec<u8>,
    hasher: Sha256,
    len: u64,
    upload: Option<Multipart>,
}

impl S3BlobWriter {
    /// Sends the buffer as the next part, starting the multipart upload first if need be.
    async fn send_part(&mut self) -> BlobResult<()> {
        let inner = &self.store.inner;
        if self.upload.is_none() {
            let staging_key = format!(
                "{STAGING_PREFIX}{}",
                hex::encode(rand::random::<[u8; 16]>())
            );
            let created = inner
                .client
                .create_multipart_upload()
                .bucket(&inner.bucket)
                .key(&staging_key)
                .send()
                .await
                .map_err(|e| classify(e, "starting a multipart upload"))?;
            let upload_id = created.upload_id().unwrap_or_default().to_owned();
            self.upload = Some(Multipart {
                staging_key,
                upload_id,
                parts: Vec::new(),
            });
        }
        let upload = self.upload.as_mut().expect("started above");
        let part_number = upload.parts.len() as i32 + 1;
        // The next part's buffer is allocated only once this one is sent, so that it can reuse
        // this one's memory: at most one part is resident.
        let part = std::mem::take(&mut self.buffer);
        let sent = inner
            .client
            .upload_part()
            .bucket(&inner.bucket)
            .key(&upload.staging_key)
            .upload_id(&upload.upload_id)
            .part_number(part_number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| classify(e, &format!("uploading part {part_number}")))?;
        upload.parts.push(
            CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .set_checksum_crc32(sent.checksum_crc32().map(str::to_owned))
                .build(),
        );
        self.buffer.reserve_exact(inner.part_size);
        Ok(())
    }

    /// Completes the multipart upload, copies it to `key` and removes the staging object.
    async fn publish_multipart(&mut self, key: &str) -> BlobResult<()> {
        if !self.buffer.is_empty() {
            self.send_part().await?;
        }
        let inner = Arc::clone(&self.store.inner);
        let upload = self.upload.take().expect("a multipart write");
        let completed = inner
            .client
            .complete_multipart_upload()
            .bucket(&inner.bucket)
            .key(&upload.staging_key)
            .upload_id(&upload.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(upload.parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = completed {
            let err = classify(e, &format!("completing the upload of {key}"));
            let _ = abort_upload(&inner, &upload.staging_key, &upload.upload_id).await;
            return Err(err);
        }
        let copied = inner
            .client
            .copy_object()
            .bucket(&inner.bucket)
            .key(key)
            .copy_source(format!("{}/{}", inner.bucket, upload.staging_key))
            .send()
            .await
            .map_err(|e| classify(e, &format!("copying the staged upload to {key}")));
        // The staging object goes whether or not the copy worked; a failed delete is swept later.
        let _ = self.store.delete_object(&upload.staging_key).await;
        copied.map(drop)
    }

    async fn abort_multipart(&mut self) -> BlobResult<()> {
        match self.upload.take() {
            Some(upload) => {
                abort_upload(&self.store.inner, &upload.staging_key, &upload.upload_id).await
            }
            None => Ok(()),
        }
    }
}

#[async_trait]
impl BlobWriter for S3BlobWriter {
    async fn write(&mut self, mut chunk: &[u8]) -> BlobResult<()> {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
        let part_size = self.store.inner.part_size;
        while !chunk.is_empty() {
            let take = (part_size - self.buffer.len()).min(chunk.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buffer.len() == part_size {
                if let Err(err) = self.send_part().await {
                    let _ = self.abort_multipart().await;
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    async fn commit(mut self: Box<Self>, key: &BlobKey) -> BlobResult<()> {
        let checked = checked_key(key).and_then(|dest| {
            let hasher = std::mem::take(&mut self.hasher);
            check_address(key, || hasher.finalize().into())?;
            Ok(dest)
        });
        let published = match checked {
            Err(err) => Err(err),
            Ok(dest) if self.upload.is_none() => {
                let data = Bytes::from(std::mem::take(&mut self.buffer));
                self.store.put_object(dest, data).await
            }
            Ok(dest) => self.publish_multipart(dest).await,
        };
        if published.is_err() {
            let _ = self.abort_multipart().await;
        }
        published
    }

    async fn abort(mut self: Box<Self>) -> BlobResult<()> {
        self.abort_multipart().await
    }
}

impl Drop for S3BlobWriter {
    /// A writer dropped mid-upload (its client went away) aborts the upload in the background.
    fn drop(&mut self) {
        if let (Some(upload), Ok(runtime)) =
            (self.upload.take(), tokio::runtime::Handle::try_current())
        {
            let inner = Arc::clone(&self.store.inner);
            runtime.spawn(async move {
                if let Err(err) = abort_upload(&inner, &upload.staging_key, &upload.upload_id).await
                {
                    tracing::warn!(%err, "a dropped upload could not be aborted; start-up sweeps it");
                }
            });
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn writer(&self) -> BlobResult<Box<dyn BlobWriter>> {
        Ok(Box::new(S3BlobWriter {
            store: self.clone(),
            buffer: Vec::new(),
            hasher: Sha256::new(),
            len: 0,
            upload: None,
        }))
    }

    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        let dest = checked_key(key)?;
        check_address(key, || Sha256::digest(&data).into())?;
        self.put_object(dest, data).await
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        let name = checked_key(key)?;
        let got = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(name)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await;
        let object = match got {
            Ok(object) => object,
            Err(e) if is_not_found(&e) => return Err(BlobError::NotFound(key.to_string())),
            Err(e) => return Err(classify(e, &format!("reading {key}"))),
        };
        let data = collect_body(object.body, key).await?;
        check_address(key, || Sha256::digest(&data).into())?;
        Ok(data)
    }

    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> BlobResult<BlobRead> {
        let name = checked_key(key)?;
        if range.as_ref().is_some_and(|r| r.start >= r.end) {
            return match self.head(key).await? {
                Some(_) => Ok(BlobRead {
                    len: 0,
                    body: futures::stream::empty().boxed(),
                }),
                None => Err(BlobError::NotFound(key.to_string())),
            };
        }
        // A whole object's checksum is checked by the SDK as its body streams through; a range
        // has none.
        let got = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(name)
            .set_range(range.as_ref().map(range_header))
            .set_checksum_mode(range.is_none().then_some(ChecksumMode::Enabled))
            .send()
            .await;
        let object = match got {
            Ok(object) => object,
            Err(e) if is_not_found(&e) => return Err(BlobError::NotFound(key.to_string())),
            // The range starts at or past the end: nothing of an object that exists.
            Err(e) if is_unsatisfiable_range(&e) => {
                return Ok(BlobRead {
                    len: 0,
                    body: futures::stream::empty().boxed(),
                })
            }
            Err(e) => return Err(classify(e, &format!("reading {key} {range:?}"))),
        };
        let len = object.content_length().unwrap_or(0).max(0) as u64;
        let key = key.to_string();
        let body = futures::stream::unfold(object.body, move |mut body| {
            let key = key.clone();
            async move {
                let chunk = body.next().await?;
                let chunk =
                    chunk.map_err(|e| BlobError::Unavailable(format!("reading {key}: {e}")));
                Some((chunk, body))
            }
        });
        Ok(BlobRead {
            len,
            body: body.boxed(),
        })
    }

    async fn presigned_get(
        &self,
        key: &BlobKey,
        expires_in: Duration,
        content_type: &str,
    ) -> BlobResult<Option<String>> {
        let name = checked_key(key)?;
        let presigning = PresigningConfig::expires_in(expires_in).map_err(|e| {
            BlobError::Refused(format!(
                "cannot presign for {expires_in:?}: {e}; S3 takes at most 7 days"
            ))
        })?;
        let request = self
            .inner
            .client
            .get_object()
            .bucket(&self.inner.bucket)
            .key(name)
            .response_content_type(content_type)
            .presigned(presigning)
            .await
            .map_err(|e| classify(e, &format!("presigning a download of {key}")))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn head(&self, key: &BlobKey) -> BlobResult<Option<BlobMeta>> {
        let name = checked_key(key)?;
        let head = self
            .inner
            .client
            .head_object()
            .bucket(&self.inner.bucket)
            .key(name)
            .send()
            .await;
        match head {
            Ok(object) => Ok(Some(BlobMeta {
                len: object.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify(e, &format!("looking up {key}"))),
        }
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        self.delete_object(checked_key(key)?).await
    }

    async fn written_before(
        &self,
        prefix: &str,
        before_ms: i64,
        limit: usize,
    ) -> BlobResult<Vec<BlobKey>> {
        checked_key(&BlobKey::from_string(prefix.trim_end_matches('/')))?;
        let keys = self.list(prefix, before_ms, limit).await?;
        Ok(keys.into_iter().map(BlobKey::from_string).collect())
    }

    async fn ping(&self) -> BlobResult<()> {
        let head = self
            .inner
            .client
            .head_bucket()
            .bucket(&self.inner.bucket)
            .send()
            .await;
        head.map(drop)
            .map_err(|e| classify(e, &format!("checking bucket {}", self.inner.bucket)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// An `https://` endpoint gets a TLS handshake from the ring-backed client (the SDK's own
    /// HTTPS client is compiled out), and a server that answers no TLS is an error, not a panic.
    #[tokio::test]
    async fn https_endpoints_are_spoken_to_in_tls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("https://{}", listener.local_addr().unwrap());
        let credentials = Credentials {
            access_key_id: "key".into(),
            secret_access_key: "secret".into(),
        };
        let mut config = S3Config::new("bucket", credentials);
        config.endpoint = Some(endpoint);
        config.path_style = true;
        config.max_attempts = 1;
        let store = S3BlobStore::remote(config);
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 3];
            socket.read_exact(&mut hello).await.unwrap();
            hello
        });
        let err = store.ping().await.unwrap_err();
        // A TLS record header: handshake (0x16), protocol version 3.x.
        assert_eq!(server.await.unwrap()[..2], [0x16, 0x03], "{err}");
    }
}
