//! Metadata in ScyllaDB (or Apache Cassandra, which tests run against): the `ScyllaMetaStore`
//! backend of `MetaStore`, the only crate that knows CQL.
//!
//! - `config.rs`: the `scylla://` URL: hosts, keyspace, the region's datacenter, the keyspace's
//!   replication per datacenter, and the consistency of each class of operation.
//! - `schema.rs`: versioned migrations, applied at start-up and by `pixelmill migrate`.
//! - `store.rs`: the trait's operations as prepared statements; links and outbox events keep
//!   the index rows their scans read in logged batches with them.
//! - `error.rs`: retryable (unavailable, timeout, overloaded) and final errors.

mod config;
mod error;
mod schema;
mod store;

pub use config::{Consistencies, Level, Placement, ScyllaConfig, Serial};
pub use store::ScyllaMetaStore;
