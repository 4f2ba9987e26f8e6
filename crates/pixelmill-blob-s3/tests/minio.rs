//! `S3BlobStore` against a real MinIO (cluster/minio/minio).

mod common;

use bytes::Bytes;
use common::{cluster, minio_available, staging, store, stream_pattern, unique_bucket};
use pixelmill_blob::{suite, BlobError, BlobStore};
use pixelmill_core::{sha256_hex, BlobKey};
use std::time::{Duration, Instant};

#[tokio::test]
async fn passes_the_blobstore_conformance_suite() {
    if !minio_available() {
        return;
    }
    // 5 MiB parts, so the suite's 5 MiB streamed write is a multipart upload of two parts.
    let store = store(&unique_bucket(), 1, "&part_size_mib=5").await;
    suite::run_all(&store).await;
    assert_eq!(staging(&store).await, (0, 0), "nothing left in staging");
}

#[tokio::test]
async fn large_writes_go_up_in_parts_and_appear_only_when_committed() {
    if !minio_available() {
        return;
    }
    let store = store(&unique_bucket(), 1, "&part_size_mib=5").await;
    let key = suite::unique_key();
    let mut writer = store.writer().await.unwrap();
    stream_pattern(writer.as_mut(), 17 * 1024 * 1024 + 3).await;
    assert_eq!(
        staging(&store).await.0,
        1,
        "a multipart upload is in progress"
    );
    assert_eq!(store.head(&key).await.unwrap(), None);
    writer.commit(&key).await.unwrap();
    assert_eq!(
        store.head(&key).await.unwrap().unwrap().len,
        17 * 1024 * 1024 + 3
    );
    let tail = store
        .read(&key, Some(17 * 1024 * 1024..u64::MAX))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let expected: Vec<u8> = (0..3).map(|i| (i * 31 % 251) as u8).collect();
    assert!(
        tail == expected,
        "the last 3 bytes read back as {} bytes",
        tail.len()
    );
    assert_eq!(staging(&store).await, (0, 0));
}

#[tokio::test]
async fn aborted_and_dropped_multipart_writes_leave_nothing() {
    if !minio_available() {
        return;
    }
    let store = store(&unique_bucket(), 1, "&part_size_mib=5").await;
    let mut aborted = store.writer().await.unwrap();
    stream_pattern(aborted.as_mut(), 6 * 1024 * 1024).await;
    assert_eq!(staging(&store).await.0, 1);
    aborted.abort().await.unwrap();
    assert_eq!(staging(&store).await, (0, 0));

    let mut dropped = store.writer().await.unwrap();
    stream_pattern(dropped.as_mut(), 6 * 1024 * 1024).await;
    drop(dropped);
    let started = Instant::now();
    while staging(&store).await != (0, 0) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the dropped upload is aborted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn start_up_sweeps_staging_a_crash_left_behind() {
    if !minio_available() {
        return;
    }
    let bucket = unique_bucket();
    let store = store(&bucket, 1, "&part_size_mib=5").await;
    let mut crashed = store.writer().await.unwrap();
    stream_pattern(crashed.as_mut(), 6 * 1024 * 1024).await;
    // A crash: the writer's destructor never runs.
    std::mem::forget(crashed);
    assert_eq!(staging(&store).await.0, 1);
    let young = store
        .sweep_staging(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        young.aborted_uploads, 0,
        "uploads younger than the cutoff may be in flight"
    );
    let swept = store.sweep_staging(Duration::ZERO).await.unwrap();
    assert_eq!(swept.aborted_uploads, 1);
    assert_eq!(staging(&store).await, (0, 0));
}

#[tokio::test]
async fn originals_must_match_their_content_address() {
    if !minio_available() {
        return;
    }
    let store = store(&unique_bucket(), 1, "").await;
    let key = BlobKey::original(&sha256_hex(b"the real bytes"));
    let err = store
        .put(&key, Bytes::from_static(b"other bytes"))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
    let mut writer = store.writer().await.unwrap();
    writer.write(b"other bytes").await.unwrap();
    let err = writer.commit(&key).await.unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
    assert_eq!(
        store.head(&key).await.unwrap(),
        None,
        "nothing was published"
    );

    // Bytes changed behind the store's back are caught when read.
    store
        .client()
        .put_object()
        .bucket(store.bucket())
        .key(key.as_str())
        .body(Bytes::from_static(b"bit rot").into())
        .send()
        .await
        .unwrap();
    let err = store.get(&key).await.unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_reason() {
    if !minio_available() {
        return;
    }
    let url = format!("s3://{}?endpoint={}", unique_bucket(), common::endpoint(1));
    let wrong = pixelmill_blob_s3::Credentials {
        access_key_id: "nobody".into(),
        secret_access_key: "wrong-secret".into(),
    };
    let config = pixelmill_blob_s3::S3Config::from_url(&url, wrong).unwrap();
    let err = pixelmill_blob_s3::S3BlobStore::open(config)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, BlobError::Refused(_)), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");

    let url = format!(
        "s3://{}?endpoint={}&create_bucket=false",
        unique_bucket(),
        common::endpoint(1)
    );
    let config = pixelmill_blob_s3::S3Config::from_url(&url, common::credentials()).unwrap();
    let err = pixelmill_blob_s3::S3BlobStore::open(config)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Server 2 goes away mid-write: the write fails as retryable within the retry budget, nothing
/// appears, and once the server is back the same store writes again, with no reconnect by hand.
#[tokio::test]
async fn an_outage_is_retryable_and_the_store_recovers() {
    if !minio_available() {
        return;
    }
    let store = store(&unique_bucket(), 2, "&part_size_mib=5&timeout_ms=2000").await;
    let key = suite::unique_key();
    let mut writer = store.writer().await.unwrap();
    stream_pattern(writer.as_mut(), 6 * 1024 * 1024).await;
    cluster(&["kill-node", "2"]);
    let started = Instant::now();
    let mut failed = None;
    for _ in 0..200 {
        if let Err(err) = writer.write(&[7u8; 64 * 1024]).await {
            failed = Some(err);
            break;
        }
    }
    let err = failed.expect("writing to a dead server fails");
    let took = started.elapsed();
    eprintln!("outage: write failed after {took:?}: {err}");
    assert!(err.is_retryable(), "{err}");
    assert!(took < Duration::from_secs(10), "failed in {took:?}");
    let err = store.head(&key).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");

    cluster(&["start-node", "2"]);
    let started = Instant::now();
    store.put(&key, Bytes::from_static(b"after")).await.unwrap();
    eprintln!(
        "outage: first write after the restart took {:?}",
        started.elapsed()
    );
    assert_eq!(store.get(&key).await.unwrap(), &b"after"[..]);
    let swept = store.sweep_staging(Duration::ZERO).await.unwrap();
    assert!(swept.aborted_uploads <= 1, "{swept:?}");
    assert_eq!(staging(&store).await, (0, 0));
}
