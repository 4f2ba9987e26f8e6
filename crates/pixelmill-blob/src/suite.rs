//! The `BlobStore` conformance suite. Every backend runs it from its own tests, e.g.
//! `suite::run_all(&store).await`; a failing check panics with what the backend got wrong.
//!
//! Every run writes under fresh random keys, so it can run against a shared bucket or directory.
//! What a backend's staging area looks like after aborts is backend-specific and tested there.

use crate::{BlobError, BlobMeta, BlobStore};
use bytes::Bytes;
use pixelmill_core::BlobKey;

pub async fn run_all(store: &dyn BlobStore) {
    round_trip(store).await;
    overwrite(store).await;
    missing(store).await;
    ranges(store).await;
    delete_is_idempotent(store).await;
    writer_publishes_on_commit_only(store).await;
    abandoned_writers_publish_nothing(store).await;
    invalid_keys(store).await;
    large_streamed_write(store).await;
    listing_by_write_time(store).await;
    store.ping().await.expect("ping");
}

/// A key no other run uses, shaped like an output's content address.
pub fn unique_key() -> BlobKey {
    BlobKey::output(&hex::encode(rand::random::<[u8; 32]>()))
}

/// Deterministic non-repeating-looking bytes, so a misplaced chunk or range shows up.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

pub async fn round_trip(store: &dyn BlobStore) {
    for len in [0, 1, 1000] {
        let key = unique_key();
        let data = Bytes::from(pattern(len));
        store.put(&key, data.clone()).await.unwrap();
        assert_eq!(
            store.get(&key).await.unwrap(),
            data,
            "{len} bytes round-trip"
        );
        let meta = store.head(&key).await.unwrap();
        assert_eq!(
            meta,
            Some(BlobMeta { len: len as u64 }),
            "head reports the length"
        );
        store.delete(&key).await.unwrap();
    }
}

pub async fn overwrite(store: &dyn BlobStore) {
    let key = unique_key();
    store
        .put(&key, Bytes::from_static(b"first version, longer"))
        .await
        .unwrap();
    store
        .put(&key, Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        &b"second"[..],
        "a put replaces"
    );
    assert_eq!(store.head(&key).await.unwrap(), Some(BlobMeta { len: 6 }));
    store.delete(&key).await.unwrap();
}

pub async fn missing(store: &dyn BlobStore) {
    let key = unique_key();
    let err = store.get(&key).await.unwrap_err();
    assert!(
        matches!(err, BlobError::NotFound(_)),
        "get of a missing blob: {err}"
    );
    for range in [None, Some(0..10)] {
        let err = store.read(&key, range.clone()).await.err();
        assert!(
            matches!(err, Some(BlobError::NotFound(_))),
            "read {range:?} of a missing blob: {err:?}"
        );
    }
    assert_eq!(store.head(&key).await.unwrap(), None);
}

pub async fn ranges(store: &dyn BlobStore) {
    let key = unique_key();
    let data = pattern(100);
    store.put(&key, Bytes::from(data.clone())).await.unwrap();
    let cases: [(std::ops::Range<u64>, &[u8]); 6] = [
        (10..20, &data[10..20]),
        (0..100, &data[..]),
        (90..1_000, &data[90..]),
        (100..200, &[]),
        (500..600, &[]),
        (5..5, &[]),
    ];
    for (range, want) in cases {
        let read = store.read(&key, Some(range.clone())).await.unwrap();
        assert_eq!(read.len, want.len() as u64, "length of {range:?}");
        let got = read.collect().await.unwrap();
        assert_eq!(got, want, "range {range:?} of a 100-byte blob");
    }
    let whole = store.read(&key, None).await.unwrap();
    assert_eq!(whole.len, 100);
    assert_eq!(
        whole.collect().await.unwrap(),
        data,
        "a read of the whole blob"
    );
    store.delete(&key).await.unwrap();
}

/// `written_before` finds what was written before a time under its prefix, nothing after it, nothing
/// under another prefix, and at most `limit` keys.
pub async fn listing_by_write_time(store: &dyn BlobStore) {
    let now_ms = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        since.expect("a clock after 1970").as_millis() as i64
    };
    let prefix = format!("sweep-{}/", hex::encode(rand::random::<[u8; 8]>()));
    let keys: Vec<BlobKey> = (0..3)
        .map(|i| BlobKey::from_string(format!("{prefix}blob{i}")))
        .collect();
    let before = now_ms() - 1000;
    for key in &keys {
        store.put(key, Bytes::from_static(b"cached")).await.unwrap();
    }
    let after = now_ms() + 1000;
    let mut found = store.written_before(&prefix, after, 10).await.unwrap();
    found.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(found, keys, "everything under {prefix} written before now");
    assert!(store
        .written_before(&prefix, before, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.written_before(&prefix, after, 2).await.unwrap().len(),
        2
    );
    let elsewhere = format!("sweep-{}/", hex::encode(rand::random::<[u8; 8]>()));
    assert!(store
        .written_before(&elsewhere, after, 10)
        .await
        .unwrap()
        .is_empty());
    for key in &keys {
        store.delete(key).await.unwrap();
    }
    assert!(store
        .written_before(&prefix, after, 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn delete_is_idempotent(store: &dyn BlobStore) {
    let key = unique_key();
    store
        .put(&key, Bytes::from_static(b"doomed"))
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(store.head(&key).await.unwrap(), None);
    let err = store.get(&key).await.unwrap_err();
    assert!(
        matches!(err, BlobError::NotFound(_)),
        "get after delete: {err}"
    );
    store
        .delete(&key)
        .await
        .expect("deleting an absent blob is not an error");
}

pub async fn writer_publishes_on_commit_only(store: &dyn BlobStore) {
    let key = unique_key();
    let mut writer = store.writer().await.unwrap();
    writer.write(b"hello, ").await.unwrap();
    writer.write(b"world").await.unwrap();
    assert_eq!(writer.len(), 12);
    assert_eq!(
        store.head(&key).await.unwrap(),
        None,
        "nothing visible before commit"
    );
    writer.commit(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), &b"hello, world"[..]);
    store.delete(&key).await.unwrap();
}

pub async fn abandoned_writers_publish_nothing(store: &dyn BlobStore) {
    let key = unique_key();
    store.put(&key, Bytes::from_static(b"kept")).await.unwrap();

    let mut aborted = store.writer().await.unwrap();
    aborted.write(b"aborted data").await.unwrap();
    aborted.abort().await.unwrap();
    let mut dropped = store.writer().await.unwrap();
    dropped.write(b"dropped data").await.unwrap();
    drop(dropped);

    let got = store.get(&key).await.unwrap();
    assert_eq!(
        got,
        &b"kept"[..],
        "abandoned writers do not touch existing blobs"
    );
    store.delete(&key).await.unwrap();
}

pub async fn invalid_keys(store: &dyn BlobStore) {
    let bad = [
        "",
        "/abs",
        "../escape",
        "a/../b",
        "..",
        "a//b",
        "trailing/",
        "Upper",
        "sp ace",
    ];
    for raw in bad {
        let key = BlobKey::from_string(raw);
        let errors = [
            store.put(&key, Bytes::from_static(b"x")).await.err(),
            store.get(&key).await.err(),
            store.read(&key, Some(0..1)).await.err(),
            store.head(&key).await.err(),
            store.delete(&key).await.err(),
        ];
        for err in errors {
            assert!(
                matches!(err, Some(BlobError::InvalidKey(_))),
                "key {raw:?}: {err:?}"
            );
        }
        let mut writer = store.writer().await.unwrap();
        writer.write(b"x").await.unwrap();
        let err = writer.commit(&key).await.err();
        assert!(
            matches!(err, Some(BlobError::InvalidKey(_))),
            "commit to {raw:?}: {err:?}"
        );
    }
}

/// 5 MiB in 64 KiB chunks: the shape of an upload being streamed through.
pub async fn large_streamed_write(store: &dyn BlobStore) {
    const CHUNK: usize = 64 * 1024;
    let key = unique_key();
    let data = pattern(5 * 1024 * 1024);
    let mut writer = store.writer().await.unwrap();
    for chunk in data.chunks(CHUNK) {
        writer.write(chunk).await.unwrap();
    }
    assert_eq!(writer.len(), data.len() as u64);
    writer.commit(&key).await.unwrap();

    let got = store.get(&key).await.unwrap();
    assert!(got == data, "5 MiB blob differs after a streamed write");
    let tail = store
        .read(&key, Some((data.len() - CHUNK) as u64..u64::MAX))
        .await
        .unwrap();
    assert!(
        tail.collect().await.unwrap() == data[data.len() - CHUNK..],
        "last chunk read by range differs"
    );
    let mut streamed = store.read(&key, None).await.unwrap();
    let (mut chunks, mut at) = (0, 0);
    while let Some(chunk) = futures::TryStreamExt::try_next(&mut streamed.body)
        .await
        .unwrap()
    {
        assert!(
            chunk[..] == data[at..at + chunk.len()],
            "chunk at {at} differs"
        );
        at += chunk.len();
        chunks += 1;
    }
    assert_eq!(at, data.len(), "a streamed read carries the whole blob");
    assert!(chunks > 1, "5 MiB arrives in more than one chunk");
    store.delete(&key).await.unwrap();
}
