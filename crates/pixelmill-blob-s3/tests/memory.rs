//! A streamed write holds at most one part, whatever the body's size: the peak resident memory of
//! this process (its own test binary, so no other test shares the figure) while 40 MiB streams
//! through (five 8 MiB parts) is within one part of its peak for 16 MiB (two parts): 24 MiB more
//! body, at most one more part resident. (The part just sent may still be resident when the next
//! fills: it is freed on the connection's thread, whose allocator arena this thread cannot reuse.)

mod common;

use common::{minio_available, store, stream_pattern, unique_bucket};
use pixelmill_blob::{suite, BlobStore};

/// Peak resident set since the last reset, in KiB (`VmHWM`), then resets it (`clear_refs` 5).
fn take_peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    peak
}

#[tokio::test]
async fn memory_does_not_grow_with_the_body() {
    if !minio_available() {
        return;
    }
    const MIB: usize = 1024 * 1024;
    let store = store(&unique_bucket(), 1, "&part_size_mib=8").await;
    let mut peaks = Vec::new();
    // The first write warms up connections and allocator arenas.
    for size in [16 * MIB, 16 * MIB, 40 * MIB] {
        let key = suite::unique_key();
        take_peak_rss_kib();
        let mut writer = store.writer().await.unwrap();
        stream_pattern(writer.as_mut(), size).await;
        writer.commit(&key).await.unwrap();
        peaks.push((size, take_peak_rss_kib()));
        assert_eq!(store.head(&key).await.unwrap().unwrap().len, size as u64);
        store.delete(&key).await.unwrap();
    }
    let (small, large) = (peaks[1].1, peaks[2].1);
    eprintln!("peak RSS: 16 MiB body {small} KiB, 40 MiB body {large} KiB");
    assert!(
        large <= small + 9 * 1024,
        "a 40 MiB body peaked at {large} KiB, a 16 MiB one at {small} KiB: more than a part apart"
    );
}
