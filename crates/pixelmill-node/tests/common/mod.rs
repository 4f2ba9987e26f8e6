//! A node with one worker whose jobs run through a test's decorated executor, and one job through
//! its API: the shared set-up of the tests that break a node's job handling on purpose.

use pixelmill_node::{Config, JobExecutor, Node};
use pixelmill_testkit::{jpeg, Client};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Starts a one-worker node on embedded defaults in `dir`, its runner wrapped by `wrap`.
pub async fn one_worker_node(
    dir: &Path,
    lease_ttl: Duration,
    wrap: impl FnOnce(Arc<dyn JobExecutor>) -> Arc<dyn JobExecutor>,
) -> Node {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        workers: 1,
        lease_ttl,
        bootstrap_key: Some(pixelmill_testkit::ADMIN_KEY.into()),
        ..Config::default()
    };
    Node::start_with(config, wrap).await.unwrap()
}

/// Uploads a `size`×`size` JPEG, submits an invert job on it and returns the job once it ended.
pub async fn run_a_job(client: &Client, size: u32) -> Value {
    let image = client.upload_ok(jpeg(size, size)).await;
    let job =
        json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "png"}});
    let (status, body) = client.create_job(&job, None).await;
    assert_eq!(status, 202, "{body}");
    client
        .wait_job(body["id"].as_str().unwrap(), Duration::from_secs(30))
        .await
}
