//! A dead letter whose worker never recorded it (its node died between the scheduler's answer
//! and the metadata write) is recorded by the leader's sweep once a lease's length has passed.
//! Its own test binary: actor names are global to a process, so one node per process.

use async_trait::async_trait;
use pixelmill_node::{Config, JobExecutor, JobFailure, JobRef, Node};
use pixelmill_sched::Lease;
use pixelmill_testkit::{jpeg, Client};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Fails every job for good, and loses the first failed job's record write, as a node that dies
/// between the scheduler's dead letter and its metadata write does.
struct FailsAndLosesFirstRecord {
    inner: Arc<dyn JobExecutor>,
    records: AtomicUsize,
}

#[async_trait]
impl JobExecutor for FailsAndLosesFirstRecord {
    async fn execute(&self, _lease: &Lease) -> Result<(), JobFailure> {
        Err(JobFailure::final_("injected final failure"))
    }

    async fn record_failure(&self, job: &JobRef, failure: &JobFailure, dead: bool) -> bool {
        if self.records.fetch_add(1, Ordering::SeqCst) == 0 {
            return false;
        }
        self.inner.record_failure(job, failure, dead).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_its_worker_did_not_record_is_recorded_by_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        workers: 1,
        lease_ttl: Duration::from_secs(1),
        ..Config::default()
    };
    let node = Node::start_with(config, move |inner| {
        Arc::new(FailsAndLosesFirstRecord {
            inner,
            records: AtomicUsize::new(0),
        }) as Arc<dyn JobExecutor>
    })
    .await
    .unwrap();
    let client = Client::new(format!("http://{}", node.addr));
    let image = client.upload_ok(jpeg(16, 16)).await;
    let (status, body) = client
        .create_job(&json!({"image_id": image, "pipeline": [{"op": "invert"}], "output": {"format": "png"}}), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = client
        .wait_job(body["id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("stopped before recording the error"),
        "the leader's sweep, not the worker, recorded it: {job}"
    );
    node.shutdown().await.unwrap();
}
