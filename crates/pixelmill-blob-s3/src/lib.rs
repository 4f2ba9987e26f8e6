//! The `BlobStore` on S3 or any S3-compatible server (MinIO in the tests), through `aws-sdk-s3`.
//! `S3Config::from_url` reads the `s3://` URL a node is configured with; `S3BlobStore` is the
//! store (see `store.rs` for how writes stay invisible until complete).

mod config;
mod error;
mod store;

pub use config::{Credentials, S3Config, MIN_PART_SIZE};
pub use store::{S3BlobStore, Swept};
