//! Blobs: originals and outputs under content-addressed keys (`pixelmill_core::BlobKey`).
//!
//! Architecture invariant: a blob is either absent or complete under its final key. Writers stage
//! data elsewhere (a temp file, an S3 multipart upload) and `commit` publishes it atomically; a
//! writer dropped or aborted leaves nothing behind. Backends: `FsBlobStore` (default) and the S3
//! store in `pixelmill-blob-s3`.

mod error;
mod fs_store;
pub mod suite;

pub use error::BlobError;
pub use fs_store::FsBlobStore;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, TryStreamExt};
use pixelmill_core::BlobKey;
use std::ops::Range;
use std::time::Duration;

pub type BlobResult<T> = Result<T, BlobError>;

/// `key` as a relative path of `[a-z0-9_.-]` segments, each non-empty and not starting with '.',
/// or `InvalidKey`. Every backend checks keys with it, so a key valid on one is valid on all, and
/// names starting with '.' stay free for a backend's own use (its staging area).
pub fn checked_key(key: &BlobKey) -> BlobResult<&str> {
    let valid_segment = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
    };
    if key.as_str().split('/').all(valid_segment) {
        Ok(key.as_str())
    } else {
        Err(BlobError::InvalidKey(key.as_str().to_owned()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub len: u64,
}

/// A read in progress: `len` bytes, arriving as the body is polled, so a download of any size
/// holds one chunk at a time. An error part-way ends the stream with that error.
pub struct BlobRead {
    pub len: u64,
    pub body: BoxStream<'static, BlobResult<Bytes>>,
}

impl BlobRead {
    /// The whole body in one buffer (small blobs, tests).
    pub async fn collect(self) -> BlobResult<Bytes> {
        let mut data = Vec::with_capacity(self.len as usize);
        let mut body = self.body;
        while let Some(chunk) = body.try_next().await? {
            data.extend_from_slice(&chunk);
        }
        Ok(data.into())
    }
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a streamed write whose key is only known at the end (it is the content's hash).
    async fn writer(&self) -> BlobResult<Box<dyn BlobWriter>>;
    /// Writes a whole blob atomically; writing the same key again replaces it.
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()>;
    /// The whole blob; `BlobError::NotFound` when absent.
    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes>;
    /// Streams the bytes of `range` (the whole blob for `None`), clamped to the blob's length;
    /// `NotFound` when absent.
    async fn read(&self, key: &BlobKey, range: Option<Range<u64>>) -> BlobResult<BlobRead>;
    /// A URL from which a plain HTTP GET fetches the blob, served as `content_type`, for
    /// `expires_in`; `None` where the backend has no such URLs (files).
    async fn presigned_get(
        &self,
        _key: &BlobKey,
        _expires_in: Duration,
        _content_type: &str,
    ) -> BlobResult<Option<String>> {
        Ok(None)
    }
    async fn head(&self, key: &BlobKey) -> BlobResult<Option<BlobMeta>>;
    /// Deleting an absent blob is not an error.
    async fn delete(&self, key: &BlobKey) -> BlobResult<()>;
    /// Up to `limit` keys of the blobs directly under `prefix` (e.g. `render/`) that were written
    /// before `before_ms` (unix milliseconds): how caches kept in the store are swept.
    async fn written_before(
        &self,
        prefix: &str,
        before_ms: i64,
        limit: usize,
    ) -> BlobResult<Vec<BlobKey>>;
    /// A cheap round trip for `/readyz`.
    async fn ping(&self) -> BlobResult<()>;
}

#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> BlobResult<()>;
    /// Bytes written so far.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Publishes everything written under `key`, atomically and durably.
    async fn commit(self: Box<Self>, key: &BlobKey) -> BlobResult<()>;
    /// Discards the staged data. Dropping a writer without committing does the same.
    async fn abort(self: Box<Self>) -> BlobResult<()>;
}
