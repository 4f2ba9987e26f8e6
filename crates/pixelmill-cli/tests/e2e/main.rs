//! End-to-end tests: the real `pixelmill` binary on a loopback port, driven over HTTP like a client.
//! All in one test binary (one link step), one fresh data dir per test.
//!
//! With `PIXELMILL_E2E_REGION=eu` (scripts/test-all runs the suite once more so), every node is
//! in that region of the repository's regions/ and keeps its metadata in the region's Cassandra
//! datacenter instead of the embedded store, in a keyspace of its own, and its blobs in the
//! region's MinIO server (cluster/minio/minio) instead of files, in a bucket of its own.

mod auth;
mod bad_input;
mod blobs;
mod durability;
mod events;
mod expiry;
mod filters;
mod flow;
mod idempotency;
mod limits;
mod migrate;
mod overload;
mod process;
mod raft;
mod regions;
mod render;
mod safe_responses;
mod ssrf;
mod watermark;

use pixelmill_testkit::{Client, Server};
use tempfile::TempDir;

pub const SECRET: &str = "e2e-webhook-secret";

/// MinIO server 2 (region us's) is killed by one test and used by others: they take turns.
pub static MINIO_2: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct App {
    pub server: Server,
    pub client: Client,
    /// Kept so the data dir lives as long as the app.
    pub _dir: TempDir,
    /// The node's metadata and blob settings when it is not on the embedded stores.
    pub store_env: Vec<(&'static str, String)>,
}

impl App {
    /// Kills the node and starts it again on the same port, data dir and settings; the client
    /// gets fresh connections (pooled ones died with the old process).
    pub fn restart(&mut self) {
        self.server.restart();
        self.client = Client::new(self.server.base_url());
    }

    /// How many blobs the node keeps under `prefix` (`out/`, `orig/`), in whichever store it has.
    pub async fn blobs_under(&self, prefix: &str) -> usize {
        let s3_url = self.store_env.iter().find(|(k, _)| *k == "PIXELMILL_BLOB");
        match s3_url {
            Some((_, url)) => blobs::count_in_bucket(url, prefix).await,
            None => files_under(&self.server.data_dir().join("blobs").join(prefix)),
        }
    }

    /// Kills the node and starts it again on the same port, data dir and metadata store, with
    /// `env` instead of the settings it had; the client gets fresh connections.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.server.restart_with(&node_env(&self.store_env, env));
        self.client = Client::new(self.server.base_url());
    }
}

/// Starts a fresh node with its own data dir; `env` adds `PIXELMILL_*` settings.
pub fn spawn_app(env: &[(&str, &str)]) -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_env = match std::env::var("PIXELMILL_E2E_REGION") {
        Ok(region) => vec![
            ("PIXELMILL_META", format!("scylla:///{}", unique_keyspace())),
            ("PIXELMILL_REGION", region),
            ("PIXELMILL_REGIONS_DIR", regions_dir()),
            // A bucket per test: the sweeper deletes outputs its own metadata no longer links,
            // which in a shared bucket could be another test's.
            ("PIXELMILL_BLOB", blobs::unique_bucket_url(1)),
        ],
        Err(_) => Vec::new(),
    };
    let server = Server::start(
        env!("CARGO_BIN_EXE_pixelmill"),
        dir.path(),
        &node_env(&store_env, env),
    );
    let client = Client::new(server.base_url());
    App {
        server,
        client,
        _dir: dir,
        store_env,
    }
}

pub fn unique_keyspace() -> String {
    format!("pm_e2e_{:016x}", rand::random::<u64>())
}

fn files_under(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let count = |e: std::fs::DirEntry| match e.path().is_dir() {
        true => files_under(&e.path()),
        false => 1,
    };
    entries.flatten().map(count).sum()
}

/// The repository's regions/: the loopback Cassandra cluster's two datacenters.
pub fn regions_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../regions").to_owned()
}

/// The settings every test node gets, then `env`.
fn node_env<'a>(
    store_env: &'a [(&str, String)],
    env: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("PIXELMILL_WEBHOOK_SECRET", SECRET), ("RUST_LOG", "info")];
    all.extend(store_env.iter().map(|(k, v)| (*k, v.as_str())));
    all.extend_from_slice(env);
    all
}

pub fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}
