//! Blobs in S3: a node on MinIO (cluster/minio/minio, which scripts/test-all starts) whose S3 goes
//! away in the middle of an upload.

use crate::spawn_app;
use futures::StreamExt;
use pixelmill_blob::BlobStore;
use pixelmill_blob_s3::{Credentials, S3BlobStore, S3Config};
use pixelmill_testkit::{cluster, minio_available, png_rgba};
use std::time::Duration;

/// An `s3://` URL of a fresh bucket on MinIO server `k` (region k's).
pub fn unique_bucket_url(k: u8) -> String {
    format!(
        "s3://pm-e2e-{:016x}?endpoint=http://127.0.0.1:910{k}",
        rand::random::<u64>()
    )
}

/// The store behind an `s3://` URL, with the test servers' credentials.
async fn open_bucket(url: &str) -> S3BlobStore {
    let credentials = Credentials::from_env().unwrap_or(Credentials {
        access_key_id: "pixelmill".into(),
        secret_access_key: "pixelmill-test-secret".into(),
    });
    S3BlobStore::open(S3Config::from_url(url, credentials).unwrap())
        .await
        .unwrap()
}

/// Objects directly under `prefix` in the bucket of `url`.
pub async fn count_in_bucket(url: &str, prefix: &str) -> usize {
    let store = open_bucket(url).await;
    store
        .written_before(prefix, i64::MAX, usize::MAX)
        .await
        .unwrap()
        .len()
}

/// MinIO server 2 is killed after the first 5 MiB part of an upload went up: the client gets a
/// 503 with Retry-After, no object appears (the image record is written only after the blob is
/// published, so there is none either), and once the server is back the same node takes uploads
/// again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_mid_upload_is_a_503_that_leaves_nothing() {
    if !minio_available() {
        return;
    }
    let url = format!("{}&part_size_mib=5&timeout_ms=2000", unique_bucket_url(2));
    let app = spawn_app(&[("PIXELMILL_BLOB", &url)]);

    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx).map(Ok::<_, std::io::Error>));
    let request = reqwest::Client::new()
        .post(app.client.url("/v1/images"))
        .header("content-type", "image/png")
        .body(body)
        .send();
    let response = tokio::spawn(request);
    // A PNG's first bytes (the node sniffs them), then filler: the decode never comes.
    let mut sent = 0usize;
    let mut chunk = png_rgba(8, 8);
    chunk.resize(64 * 1024, 0x5a);
    while sent < 6 * 1024 * 1024 {
        tx.send(chunk.clone()).await.unwrap();
        sent += chunk.len();
    }
    // Part 1 (5 MiB) has gone up; the next part boundary is at 10 MiB.
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster("minio", &["kill-node", "2"]);
    while sent < 12 * 1024 * 1024 && tx.send(chunk.clone()).await.is_ok() {
        sent += chunk.len();
    }
    drop(tx);
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("the upload is answered")
        .unwrap()
        .expect("the node answers rather than dropping the connection");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let text = response.text().await.unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(retry_after.is_some(), "a 503 says when to retry: {text}");
    assert!(text.contains("blob store"), "{text}");

    cluster("minio", &["start-node", "2"]);
    assert_eq!(
        count_in_bucket(&url, "orig/").await,
        0,
        "no original was published"
    );

    let (status, body) = app.client.upload(png_rgba(64, 48)).await;
    assert_eq!(status, 201, "uploads work again without a restart: {body}");
    let id = body["id"].as_str().unwrap();
    let original = reqwest::get(app.client.url(&format!("/v1/images/{id}/original")))
        .await
        .unwrap();
    assert_eq!(original.status(), 200);
    assert!(original.bytes().await.unwrap() == png_rgba(64, 48));
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> impl futures::Stream<Item = Vec<u8>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
