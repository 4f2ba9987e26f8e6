//! The pixelmill API client the CLI and the tests use. It finds the service through geo-DNS
//! (the nearest healthy region's nodes for this client's network), tries the other nodes when
//! one fails, resolves again when all have, backs off between rounds, and sends every job
//! submission with an idempotency key, so a retried submission is never a second job.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pixelmill_client::ClientError> {
//! use pixelmill_client::{Client, ClientConfig, Service};
//! let service = Service::Geo {
//!     dns: "10.77.0.53:53".parse().unwrap(),
//!     name: "api.pixelmill.test".into(),
//!     port: 8080,
//!     scheme: "http".into(),
//! };
//! let client = Client::new(ClientConfig::new(service));
//! let image = client.upload(std::fs::read("photo.jpg").unwrap().into(), None).await?;
//! # Ok(()) }
//! ```

mod client;
mod dns;
mod error;
mod service;
mod types;

pub use client::{Attempt, Client, ClientConfig};
pub use dns::{lookup, LookupOptions, ResolveError, Resolved};
pub use error::ClientError;
pub use service::Service;
pub use types::{Accepted, Image, Job, JobOutput, JobRequest};
