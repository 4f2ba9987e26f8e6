//! `ScyllaMetaStore` against a real Apache Cassandra 5 cluster of two datacenters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cluster_available, eventually, store, unique_keyspace};
use pixelmill_core::{now_ms, Durability};
use pixelmill_meta::{suite, MetaStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passes_the_metastore_conformance_suite() {
    if !cluster_available() {
        return;
    }
    let store = store(&unique_keyspace(), 1, "").await;
    suite::run_all(Arc::new(store)).await;
}

/// Links are written with a TTL of their expiry plus `link_retention`: past that, Cassandra
/// drops every row of the link even if no sweeper ever ran.
#[tokio::test]
async fn links_vanish_after_their_ttl() {
    if !cluster_available() {
        return;
    }
    let store = store(&unique_keyspace(), 1, "&link_retention=4").await;
    let link = suite::link(&suite::unique_blob(), now_ms());
    store.put_link(&link).await.unwrap();
    assert_eq!(
        store.get_link(&link.token).await.unwrap(),
        Some(link.clone())
    );
    assert!(store.blob_has_links(&link.blob_key).await.unwrap());
    eventually(
        Duration::from_secs(15),
        "the link's rows expire",
        || async { store.get_link(&link.token).await.unwrap().is_none() },
    )
    .await;
    assert!(!store.blob_has_links(&link.blob_key).await.unwrap());
    let expired = store.expired_links(now_ms(), 10_000).await.unwrap();
    assert!(expired.iter().all(|l| l.token != link.token));
}

/// A write in dc1 at LOCAL_QUORUM is acknowledged by dc1 alone and reaches dc2 asynchronously.
#[tokio::test]
async fn a_local_quorum_write_in_dc1_becomes_visible_in_dc2() {
    if !cluster_available() {
        return;
    }
    let keyspace = unique_keyspace();
    let (dc1, dc2) = (store(&keyspace, 1, "").await, store(&keyspace, 2, "").await);
    let tenant = suite::unique_tenant();
    let image = suite::image(&tenant);
    dc1.put_image(&image, Durability::Local).await.unwrap();
    let took = eventually(Duration::from_secs(10), "dc2 sees dc1's write", || async {
        dc2.get_image(&tenant, &image.id).await.unwrap().is_some()
    })
    .await;
    eprintln!("dc1 -> dc2 visibility: {took:?}");
    assert_eq!(
        dc2.get_image(&tenant, &image.id).await.unwrap(),
        Some(image)
    );
}
