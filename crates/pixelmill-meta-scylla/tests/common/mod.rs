//! What the tests against a real Cassandra share: where it runs (scripts/test-all starts one
//! node per region with cluster/cassandra/cassandra and exports PIXELMILL_TEST_CQL), and stores
//! on fresh keyspaces so test runs never see each other's schema.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use pixelmill_meta_scylla::{ScyllaConfig, ScyllaMetaStore};

/// Node K of the test cluster (datacenter dcK), where regions/ says it is.
pub fn node(k: u8) -> String {
    pixelmill_testkit::cql(k)
}

/// Whether the test cluster is there. Without it the tests skip, loudly, unless
/// PIXELMILL_REQUIRE_CASSANDRA is set (scripts/test-all sets it, so CI never skips them).
pub fn cluster_available() -> bool {
    if std::env::var_os("PIXELMILL_TEST_CQL").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("PIXELMILL_REQUIRE_CASSANDRA").is_none(),
        "PIXELMILL_TEST_CQL is not set: start Cassandra with `cluster/cassandra/cassandra start 3` \
         and export PIXELMILL_TEST_CQL=10.77.1.10:9042, or run scripts/test-all"
    );
    eprintln!("skipped: no Cassandra (run scripts/test-all, which starts one)");
    false
}

/// A keyspace name no other run uses.
pub fn unique_keyspace() -> String {
    format!("pm_test_{:016x}", rand::random::<u64>())
}

/// A store of the region in datacenter dc`k`, on node `k`, with `options` appended to its URL.
pub async fn store(keyspace: &str, k: u8, options: &str) -> ScyllaMetaStore {
    let url = format!(
        "scylla://{}/{keyspace}?local_dc=dc{k}&replication=dc1:1,dc2:1{options}",
        node(k)
    );
    ScyllaMetaStore::open(ScyllaConfig::from_url(&url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"))
}

/// Polls `check` until it holds or `limit` passes; the time it took.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Runs the cluster script (`kill-node 2`, `start-node 2`, …).
pub fn cluster(args: &[&str]) {
    pixelmill_testkit::cluster("cassandra", args);
}
