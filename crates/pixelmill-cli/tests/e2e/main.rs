//! End-to-end tests: the real `pixelmill` binary on a loopback port, driven over HTTP like a client.
//! All in one test binary (one link step), one fresh data dir per test.

mod bad_input;
mod durability;
mod events;
mod expiry;
mod filters;
mod flow;
mod idempotency;
mod overload;
mod process;
mod render;
mod watermark;

use pixelmill_testkit::{Client, Server};
use tempfile::TempDir;

pub const SECRET: &str = "e2e-webhook-secret";

pub struct App {
    pub server: Server,
    pub client: Client,
    /// Kept so the data dir lives as long as the app.
    pub _dir: TempDir,
}

/// Starts a fresh node with its own data dir; `env` adds `PIXELMILL_*` settings.
pub fn spawn_app(env: &[(&str, &str)]) -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut all = vec![("PIXELMILL_WEBHOOK_SECRET", SECRET), ("RUST_LOG", "info")];
    all.extend_from_slice(env);
    let server = Server::start(env!("CARGO_BIN_EXE_pixelmill"), dir.path(), &all);
    let client = Client::new(server.base_url());
    App {
        server,
        client,
        _dir: dir,
    }
}

pub fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("output decodes")
}
