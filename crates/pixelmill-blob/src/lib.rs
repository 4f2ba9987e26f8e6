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
use pixelmill_core::BlobKey;
use std::ops::Range;

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

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts a streamed write whose key is only known at the end (it is the content's hash).
    async fn writer(&self) -> BlobResult<Box<dyn BlobWriter>>;
    /// Writes a whole blob atomically; writing the same key again replaces it.
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()>;
    /// The whole blob; `BlobError::NotFound` when absent.
    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes>;
    /// `range` is clamped to the blob's length; `NotFound` when absent.
    async fn get_range(&self, key: &BlobKey, range: Range<u64>) -> BlobResult<Bytes>;
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
