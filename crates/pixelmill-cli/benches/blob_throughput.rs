//! Upload and download throughput through pixelmill against the same transfers straight to MinIO,
//! with the same HTTP client (one reqwest client) on loopback. The node keeps its blobs in a fresh
//! bucket of MinIO server 1 (cluster/minio/minio; bench/blobs starts it).
//!
//! - upload: `POST /v1/images` of a noise PNG (the node hashes, sniffs, spools, streams it to S3
//!   in parts, decodes it completely, then records it) against a presigned `PUT` of the same
//!   bytes to the bucket;
//! - download: `GET /d/{token}` of a job's output of about the same size (streamed from S3 by
//!   the node) against a presigned `GET` of the same object.
//!
//! Each figure is the median of `ROUNDS` transfers, pixelmill's and MinIO's taken in turn.
//! `cargo bench -p pixelmill-cli --bench blob_throughput`; run without `--bench` (as
//! `cargo test --benches` does) it is a one-round smoke run. Needs `PIXELMILL_TEST_S3` (MinIO
//! running) and the MinIO credentials in `PIXELMILL_S3_ACCESS_KEY_ID` / `…_SECRET_ACCESS_KEY`.

use aws_sdk_s3::presigning::PresigningConfig;
use pixelmill_blob_s3::{Credentials, S3BlobStore, S3Config};
use pixelmill_testkit::{sized_png, Client, Server};
use serde_json::json;
use std::time::{Duration, Instant};

const ROUNDS: usize = 9;
const SIZES_MIB: [usize; 2] = [4, 32];
const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    if std::env::var_os("PIXELMILL_TEST_S3").is_none() {
        eprintln!("blob_throughput: skipped, no MinIO (run bench/blobs, which starts one)");
        return;
    }
    let rounds = if std::env::args().any(|a| a == "--bench") {
        ROUNDS
    } else {
        1
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(rounds));
}

/// A noise PNG of about `mib` MiB (noise is stored as is: the body is the pixels' size).
fn noise_png(mib: usize) -> Vec<u8> {
    let side = ((mib << 20) as f64 / 4.0).sqrt() as u32;
    sized_png(side, side, true)
}

/// Seconds `transfer` took, and the bytes it moved.
async fn timed<F: std::future::Future<Output = usize>>(transfer: F) -> (f64, usize) {
    let start = Instant::now();
    let bytes = transfer.await;
    (start.elapsed().as_secs_f64(), bytes)
}

fn median_mib_s(samples: &[(f64, usize)]) -> f64 {
    let mut rates: Vec<f64> = samples.iter().map(|(s, b)| *b as f64 / MIB / s).collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

async fn run(rounds: usize) {
    let bin = std::env::var("PIXELMILL_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pixelmill").to_owned());
    let bucket_url = format!(
        "s3://pm-bench-{:016x}?endpoint=http://10.77.1.20:9000",
        rand::random::<u64>()
    );
    let credentials = Credentials::from_env().expect("MinIO credentials in the environment");
    let config = S3Config::from_url(&bucket_url, credentials).expect("bucket URL");
    let bucket = config.bucket.clone();
    let store = S3BlobStore::open(config).await.expect("MinIO answers");
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        &bin,
        dir.path(),
        &[
            ("PIXELMILL_BLOB", bucket_url.as_str()),
            ("PIXELMILL_WEBHOOK_SECRET", "x"),
            ("PIXELMILL_MAX_BODY_BYTES", "104857600"),
        ],
    );
    let client = Client::new(server.base_url());
    let http = &client.http;
    let presign = || PresigningConfig::expires_in(Duration::from_secs(3600)).expect("an hour");
    println!(
        "blob_throughput: server {bin}, bucket {bucket} on MinIO 10.77.1.20:9000 (region eu), {rounds} rounds, \
         one reqwest client\n"
    );
    println!(
        "{:<10} {:<9} {:>16} {:>14} {:>8}",
        "body", "transfer", "pixelmill MiB/s", "MinIO MiB/s", "ratio"
    );
    for mib in SIZES_MIB {
        let body = noise_png(mib);
        let label = format!("{:.1} MiB", body.len() as f64 / MIB);
        let put_url = store
            .client()
            .put_object()
            .bucket(&bucket)
            .key(format!("bench/{mib}"))
            .presigned(presign())
            .await
            .expect("presigned PUT")
            .uri()
            .to_owned();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut image = String::new();
        for _ in 0..rounds {
            ours.push(
                timed(async {
                    let (status, record) = client.upload(body.clone()).await;
                    assert_eq!(status, 201, "{record}");
                    image = record["id"].as_str().expect("image id").to_owned();
                    body.len()
                })
                .await,
            );
            theirs.push(
                timed(async {
                    let response = http.put(&put_url).body(body.clone()).send().await.unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    body.len()
                })
                .await,
            );
        }
        report(&label, "upload", &ours, &theirs);

        let job = json!({"image_id": image, "pipeline": [{"op": "invert"}],
                         "output": {"format": "png", "compression": 0}});
        let (status, accepted) = client.create_job(&job, None).await;
        assert_eq!(status, 202, "{accepted}");
        let done = client
            .wait_job(accepted["id"].as_str().unwrap(), Duration::from_secs(120))
            .await;
        let link = done["download_url"]
            .as_str()
            .expect("download_url")
            .to_owned();
        let get_url = store
            .client()
            .get_object()
            .bucket(&bucket)
            .key(format!("bench/{mib}"))
            .presigned(presign())
            .await
            .expect("presigned GET")
            .uri()
            .to_owned();
        let download = |url: String| async move {
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "GET {url}");
            response.bytes().await.unwrap().len()
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(timed(download(link.clone())).await);
            theirs.push(timed(download(get_url.clone())).await);
        }
        report(&label, "download", &ours, &theirs);
    }
}

fn report(body: &str, transfer: &str, ours: &[(f64, usize)], theirs: &[(f64, usize)]) {
    let (ours, theirs) = (median_mib_s(ours), median_mib_s(theirs));
    println!(
        "{body:<10} {transfer:<9} {ours:>16.0} {theirs:>14.0} {:>8.2}",
        ours / theirs
    );
}
