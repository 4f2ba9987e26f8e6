//! What the tests against a real MinIO share: where it runs (scripts/test-all starts one server
//! per region with cluster/minio/minio and exports PIXELMILL_TEST_S3), and stores on fresh buckets
//! so test runs never see each other's objects.

#![allow(dead_code)]

use pixelmill_blob_s3::{Credentials, S3BlobStore, S3Config};

/// Server K of the test cluster (region K) answers S3 where regions/ says.
pub use pixelmill_testkit::s3_endpoint as endpoint;

pub use pixelmill_testkit::minio_available;

/// The test servers' credentials, as cluster/minio/minio sets them.
pub fn credentials() -> Credentials {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    Credentials {
        access_key_id: var("PIXELMILL_MINIO_USER", "pixelmill"),
        secret_access_key: var("PIXELMILL_MINIO_PASSWORD", "pixelmill-test-secret"),
    }
}

/// A bucket name no other run uses.
pub fn unique_bucket() -> String {
    format!("pm-test-{:016x}", rand::random::<u64>())
}

/// A store on server `k` with `options` appended to its URL.
pub async fn store(bucket: &str, k: u8, options: &str) -> S3BlobStore {
    let url = format!("s3://{bucket}?endpoint={}{options}", endpoint(k));
    S3BlobStore::open(S3Config::from_url(&url, credentials()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

/// Multipart uploads in progress and objects under the staging prefix.
pub async fn staging(store: &S3BlobStore) -> (usize, usize) {
    let client = store.client();
    let uploads = client
        .list_multipart_uploads()
        .bucket(store.bucket())
        .send()
        .await
        .unwrap();
    let objects = client
        .list_objects_v2()
        .bucket(store.bucket())
        .prefix(".staging/")
        .send()
        .await
        .unwrap();
    let staged_uploads = uploads.uploads().iter();
    let staged_uploads =
        staged_uploads.filter(|u| u.key().is_some_and(|k| k.starts_with(".staging/")));
    (staged_uploads.count(), objects.contents().len())
}

/// Runs cluster/minio/minio (`kill-node 2`, `start-node 2`, …).
pub fn cluster(args: &[&str]) {
    pixelmill_testkit::cluster("minio", args);
}

/// `len` bytes of a pattern that shows misplaced chunks, written in 64 KiB chunks as an upload
/// streams, without ever holding the whole body.
pub async fn stream_pattern(writer: &mut dyn pixelmill_blob::BlobWriter, len: usize) {
    let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        writer.write(&chunk[..n]).await.unwrap();
        left -= n;
    }
}
