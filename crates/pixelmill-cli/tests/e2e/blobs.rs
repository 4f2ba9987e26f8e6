//! Blobs: a node on MinIO (cluster/minio/minio, which scripts/test-all starts) whose S3 goes away
//! in the middle of an upload; what an upload costs in memory; downloads redirected to presigned
//! URLs. The last two run on whichever store the node has (files, or MinIO in the region pass).

use crate::{decode, spawn_app};
use futures::StreamExt;
use pixelmill_blob::BlobStore;
use pixelmill_blob_s3::{Credentials, S3BlobStore, S3Config};
use pixelmill_testkit::{cluster, minio_available, png_rgba, s3_endpoint, sized_png};
use std::time::Duration;

/// An `s3://` URL of a fresh bucket on MinIO server `k` (region k's).
pub fn unique_bucket_url(k: u8) -> String {
    format!(
        "s3://pm-e2e-{:016x}?endpoint={}",
        rand::random::<u64>(),
        s3_endpoint(k)
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

/// MinIO server 2 is killed while an upload's body is still arriving, so the write that follows
/// its decode check finds the store gone: the client gets a 503 with Retry-After, no object appears (the image record is written only after the blob is
/// published, so there is none either), and once the server is back the same node takes uploads
/// again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_mid_upload_is_a_503_that_leaves_nothing() {
    if !minio_available() {
        return;
    }
    let _server_2 = crate::MINIO_2.lock().await;
    let url = format!("{}&part_size_mib=5&timeout_ms=2000", unique_bucket_url(2));
    let app = spawn_app(&[("PIXELMILL_BLOB", &url)]);

    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx).map(Ok::<_, std::io::Error>));
    let request = app
        .client
        .http
        .post(app.client.url("/v1/images"))
        .header("content-type", "image/png")
        .body(body)
        .send();
    let response = tokio::spawn(request);
    // A real 16 MB image, streamed in pieces. The node spools it and writes it to the store only
    // once it has all of it and it decodes; the store goes away while it is still arriving.
    let image = sized_png(2000, 2000, true);
    let mut pieces = image.chunks(64 * 1024);
    for piece in pieces.by_ref().take(96) {
        tx.send(piece.to_vec()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster("minio", &["kill-node", "2"]);
    for piece in pieces {
        tx.send(piece.to_vec()).await.unwrap();
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
    let original = app
        .client
        .http
        .get(app.client.url(&format!("/v1/images/{id}/original")))
        .send()
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

/// Field `name` (`RssAnon`, `VmHWM`) of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// The highest `RssAnon` (heap and other private memory, not the page cache) of process `pid`
/// while `work` runs, sampled every millisecond.
async fn peak_anon_kib<F: std::future::Future>(pid: u32, work: F) -> (u64, F::Output) {
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kib(pid, "RssAnon"));
                std::thread::sleep(Duration::from_millis(1));
            }
            peak
        })
    };
    let output = work.await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    (sampler.join().unwrap(), output)
}

/// An upload costs the node its pixels, not its bytes: the body is streamed to the blob store (one
/// S3 part at a time) and spooled to disk for the decode check, never held on the heap. Two PNGs
/// of the same 3300×3300 pixels, one of a few KiB and one of some 42 MiB, each sent to a fresh
/// node, give peaks of private memory that differ by less than half the larger body; holding the
/// body would add all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_costs_the_node_its_pixels_not_its_bytes() {
    let (small, large) = (sized_png(3300, 3300, false), sized_png(3300, 3300, true));
    assert!(large.len() > 40 << 20, "{} bytes", large.len());
    assert!(small.len() < 1 << 20, "{} bytes", small.len());
    let small_len = small.len();
    let (mut peaks, mut high_water) = (Vec::new(), Vec::new());
    // On S3, 5 MiB parts (the least S3 takes): the writer's part buffer is the one cost that
    // comes with a larger body, and it is bounded by the part size.
    let bucket = format!("{}&part_size_mib=5", unique_bucket_url(1));
    let settings = match std::env::var_os("PIXELMILL_E2E_REGION") {
        Some(_) => vec![("PIXELMILL_BLOB", bucket.as_str())],
        None => Vec::new(),
    };
    for body in [small, large.clone()] {
        // A fresh node each: what an earlier upload freed cannot hide what this one holds.
        let app = spawn_app(&settings);
        let pid = app.server.pid().unwrap();
        let (peak, (status, image)) = peak_anon_kib(pid, app.client.upload(body)).await;
        assert_eq!(status, 201, "{image}");
        peaks.push(peak);
        high_water.push(status_kib(pid, "VmHWM"));
    }
    let growth_kib = peaks[1].saturating_sub(peaks[0]);
    // VmHWM counts the spool file's pages too while the decode reads them: page cache, which
    // the kernel reclaims, not memory the node holds.
    eprintln!(
        "peak RssAnon (VmHWM): {} ({}) KiB for the {} KiB body, {} ({}) KiB for the {} KiB body",
        peaks[0],
        high_water[0],
        small_len / 1024,
        peaks[1],
        high_water[1],
        large.len() / 1024
    );
    assert!(
        growth_kib < (large.len() / 1024 / 2) as u64,
        "the large body raised the peak by {growth_kib} KiB: the body is held in memory"
    );
}

/// With a download redirect, a link on S3 answers 307 to a presigned URL of the bucket, which
/// serves the same bytes (ranges too) to a client with no credentials; on files it streams.
#[tokio::test]
async fn a_download_redirect_presigns_on_s3_and_streams_from_files() {
    let app = spawn_app(&[("PIXELMILL_DOWNLOAD_REDIRECT", "5m")]);
    let on_s3 = app.store_env.iter().any(|(k, _)| *k == "PIXELMILL_BLOB");
    let id = app.client.upload_ok(png_rgba(64, 48)).await;
    let job = serde_json::json!({"image_id": id, "pipeline": [{"op": "grayscale"}], "output": {"format": "png"}});
    let (status, accepted) = app.client.create_job(&job, None).await;
    assert_eq!(status, 202, "{accepted}");
    let done = app
        .client
        .wait_job(accepted["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    let url = done["download_url"].as_str().unwrap();
    let bytes = done["output"]["bytes"].as_u64().unwrap();

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects.get(url).send().await.unwrap();
    if !on_s3 {
        assert_eq!(response.status(), 200, "files have no presigned URLs");
        assert_eq!(response.bytes().await.unwrap().len() as u64, bytes);
        return;
    }
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&s3_endpoint(1)) && location.contains("X-Amz-Signature="),
        "{location}"
    );
    let followed = reqwest::get(url).await.unwrap();
    assert_eq!(followed.status(), 200);
    assert_eq!(followed.headers()["content-type"], "image/png");
    let body = followed.bytes().await.unwrap();
    assert_eq!(body.len() as u64, bytes);
    assert!(decode(&body).width() == 64);
    let ranged = reqwest::Client::new()
        .get(&location)
        .header("range", "bytes=0-7")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), body.slice(0..8));
}
