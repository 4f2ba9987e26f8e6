//! Two regions on one machine: a node in `eu` and one in `us`, each on its own region's bucket
//! (MinIO servers 1 and 2 of cluster/minio/minio), sharing one keyspace of the test cluster's
//! Cassandra. Runs in the region pass of scripts/test-all (`PIXELMILL_E2E_REGION`), which
//! has both; the embedded pass has neither and skips it.

use crate::blobs::{count_in_bucket, unique_bucket_url};
use crate::{node_env, unique_keyspace};
use pixelmill_testkit::{cql, png_rgba, Client, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Region files for `eu` and `us` as in the repository's regions/, with buckets of their own.
fn write_regions(dir: &Path, buckets: &[(&str, &str, String, &str)]) {
    for (region, datacenter, cql, bucket) in buckets {
        let file = format!(
            "datacenter = \"{datacenter}\"\n\n[metadata]\ncql = [\"{cql}\"]\nreplicas = 1\n\n\
             [blobs]\ns3 = \"{bucket}\"\n"
        );
        std::fs::write(dir.join(format!("{region}.toml")), file).unwrap();
    }
}

/// Waits 200 ms before the next poll of `what`; panics once `deadline` has passed.
async fn poll_again(deadline: Instant, what: &str) {
    assert!(Instant::now() < deadline, "{what} in time");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn seconds(n: u64) -> Instant {
    Instant::now() + Duration::from_secs(n)
}

/// The node's `pixelmill_blob_read_through_total` hits from `region`.
async fn read_through_hits(client: &Client, region: &str) -> u64 {
    let metrics = client.get_text("/metrics").await;
    let series =
        format!("pixelmill_blob_read_through_total{{outcome=\"hit\",region=\"{region}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn get_bytes(client: &Client, path: &str) -> (u16, Vec<u8>) {
    let response = client.http.get(client.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Submits a job of one `op` on `image` and waits for it: the finished job.
async fn finished_job(client: &Client, image: &str, op: &str) -> Value {
    let job = json!({"image_id": image, "pipeline": [{"op": op}], "output": {"format": "png"}});
    let (status, accepted) = client.create_job(&job, None).await;
    assert_eq!(status, 202, "{accepted}");
    let done = client
        .wait_job(accepted["id"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done
}

/// An image uploaded in eu, while eu's replicator is off, downloads in us by read-through (the
/// original, and the output of a job run in eu), a job on it runs in us, and a job run in eu is
/// followed to its end from us; us's bucket holds no copy of the original then. Once eu
/// replicates, us's bucket has the original and eu's outputs, eu's lag gauge is back to 0, and us serves the same bytes without reading through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_uploaded_in_one_region_downloads_in_the_other() {
    if std::env::var_os("PIXELMILL_E2E_REGION").is_none() {
        eprintln!(
            "skipped: two regions need Cassandra and MinIO (the region pass of scripts/test-all)"
        );
        return;
    }
    let _server_2 = crate::MINIO_2.lock().await;
    let regions = tempfile::tempdir().unwrap();
    let (eu_bucket, us_bucket) = (unique_bucket_url(1), unique_bucket_url(2));
    write_regions(
        regions.path(),
        &[
            ("eu", "dc1", cql(1), &eu_bucket),
            ("us", "dc2", cql(2), &us_bucket),
        ],
    );
    let regions_dir = regions.path().to_str().unwrap().to_owned();
    let meta = format!("scylla:///{}", unique_keyspace());
    let settings = |region: &'static str, replicator: &'static str| {
        vec![
            ("PIXELMILL_META", meta.clone()),
            ("PIXELMILL_REGION", region.to_owned()),
            ("PIXELMILL_REGIONS_DIR", regions_dir.clone()),
            ("PIXELMILL_BLOB", "s3://".to_owned()),
            ("PIXELMILL_REPLICATOR", replicator.to_owned()),
        ]
    };
    let start = |dir: &Path, env: &[(&'static str, String)]| {
        Server::start(env!("CARGO_BIN_EXE_pixelmill"), dir, &node_env(env, &[]))
    };
    let (eu_dir, us_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut eu = start(eu_dir.path(), &settings("eu", "false"));
    let us_server = start(us_dir.path(), &settings("us", "true"));
    let (mut eu_client, us) = (
        Client::new(eu.base_url()),
        Client::new(us_server.base_url()),
    );

    let original = png_rgba(64, 48);
    let image = eu_client.upload_ok(original.clone()).await;
    let eu_job = finished_job(&eu_client, &image, "grayscale").await;
    let token = eu_job["download_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, eu_output) = get_bytes(&eu_client, &format!("/d/{token}")).await;
    assert_eq!(status, 200);

    // Before replication: us has neither blob and reads both through from eu.
    let (status, us_output) = get_bytes(&us, &format!("/d/{token}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&us_output));
    assert!(
        us_output == eu_output,
        "the output downloads in us, byte for byte"
    );
    let original_path = format!("/v1/images/{image}/original");
    let deadline = seconds(10);
    let us_original = loop {
        match get_bytes(&us, &original_path).await {
            (200, bytes) => break bytes,
            _ => poll_again(deadline, "the image record reaching us").await,
        }
    };
    assert!(
        us_original == original,
        "the original downloads in us, byte for byte"
    );
    // Another pipeline than eu's, so another output key.
    finished_job(&us, &image, "sepia").await;

    // A job run in eu, followed from us: the stream follows the job record, which reaches us.
    let job =
        json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "png"}});
    let (status, accepted) = eu_client.create_job(&job, None).await;
    assert_eq!(status, 202, "{accepted}");
    let events_path = format!("/v1/jobs/{}/events", accepted["id"].as_str().unwrap());
    let deadline = seconds(10);
    let stream = loop {
        let response = us.http.get(us.url(&events_path)).send().await.unwrap();
        if response.status() == 200 {
            break response;
        }
        poll_again(deadline, "the job's record reaching us").await;
    };
    let events = crate::events::read_events(stream).await;
    let last = events.last().expect("at least the job as it is");
    assert_eq!(last["status"], "succeeded", "{events:?}");
    assert_eq!(
        (last["home_region"].as_str(), last["region"].as_str()),
        (Some("eu"), Some("eu"))
    );
    assert_eq!(
        count_in_bucket(&us_bucket, "orig/").await,
        0,
        "us holds no copy of the original yet: it was read through"
    );
    let hits = read_through_hits(&us, "eu").await;
    assert!(
        hits >= 3,
        "download, original and us's job read through: {hits}"
    );

    // eu replicates once its replicator runs.
    eu.restart_with(&node_env(&settings("eu", "true"), &[]));
    eu_client = Client::new(eu.base_url());
    let deadline = seconds(30);
    while count_in_bucket(&us_bucket, "orig/").await != 1
        || count_in_bucket(&us_bucket, "out/").await != 3
    {
        poll_again(deadline, "eu's original and output reaching us's bucket").await;
    }
    let deadline = seconds(10);
    while !eu_client
        .get_text("/metrics")
        .await
        .lines()
        .any(|l| l == "pixelmill_replication_lag_seconds{peer=\"us\"} 0")
    {
        poll_again(deadline, "eu's replication lag returning to 0").await;
    }
    let deadline = seconds(30);
    while count_in_bucket(&eu_bucket, "out/").await != 3 {
        poll_again(deadline, "us's output reaching eu's bucket").await;
    }

    // After replication: us serves its own copies.
    let (status, again) = get_bytes(&us, &format!("/d/{token}")).await;
    assert_eq!(status, 200);
    assert!(again == eu_output);
    let (status, again) = get_bytes(&us, &original_path).await;
    assert_eq!(status, 200);
    assert!(again == original);
    assert_eq!(
        read_through_hits(&us, "eu").await,
        hits,
        "no read-through once the blobs are local"
    );
}
