//! Test helpers shared by pixelmill's end-to-end tests: a real `pixelmill` process on a loopback
//! port with its own data dir, a real webhook receiver, a DNS authority with fixed answers, test images, a small HTTP client and the
//! servers of cluster/.

mod client;
mod dns;
mod hooks;
mod images;
mod server;
mod servers;

pub use client::Client;
pub use dns::Dns;

/// The bootstrap admin key of every node a test starts (`Server`), and what `Client::new` sends.
pub const ADMIN_KEY: &str = "pixelmill-test-bootstrap-admin-key-0123456789abcdef";

/// A plain reqwest client that sends `ADMIN_KEY` on every request.
pub fn admin_http() -> reqwest::Client {
    Client::new("").http
}
pub use hooks::{Delivery, Hooks};
pub use images::{jpeg, png_rgba, sized_png};
pub use server::Server;
pub use servers::{
    cluster, cluster_with, cql, minio_available, regions, regions_dir, s3_endpoint, test_region,
};
