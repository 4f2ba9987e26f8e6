//! The supervision tree in a real node: a worker actor that panics in the middle of a job is
//! restarted by its supervisor, hands its lease back, and the job still completes.

use async_trait::async_trait;
use pixelmill_node::{Config, JobExecutor, JobFailure, JobRef, Node};
use pixelmill_sched::Lease;
use pixelmill_testkit::{jpeg, Client};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Panics on the first job it is given, then behaves like the real runner.
struct PanicsOnFirstJob {
    inner: Arc<dyn JobExecutor>,
    calls: AtomicUsize,
}

#[async_trait]
impl JobExecutor for PanicsOnFirstJob {
    async fn execute(&self, lease: &Lease) -> Result<(), JobFailure> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("injected worker crash while holding {}", lease.job);
        }
        self.inner.execute(lease).await
    }

    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        self.inner.record_failure(job, failure, dead).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_is_restarted_and_its_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        workers: 1,
        // Long enough that only the restart, not lease expiry, can bring the job back in time.
        lease_ttl: Duration::from_secs(300),
        ..Config::default()
    };
    let node = Node::start_with(config, move |inner| {
        Arc::new(PanicsOnFirstJob {
            inner,
            calls: AtomicUsize::new(0),
        }) as Arc<dyn JobExecutor>
    })
    .await
    .unwrap();
    let client = Client::new(format!("http://{}", node.addr));
    let image = client.upload_ok(jpeg(64, 64)).await;
    let (status, body) = client
        .create_job(&json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "png"}}), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = client
        .wait_job(body["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");

    let metrics = client.get_text("/metrics").await;
    assert!(
        metrics.contains("pixelmill_actor_restarts_total{actor=\"worker-0\"} 1"),
        "the worker was restarted exactly once:\n{metrics}"
    );
    node.shutdown().await.unwrap();
}
