//! How the process's allocator treats image-sized buffers.

/// Keeps freed image buffers in the process for the next image. glibc's malloc serves a block
/// above its mmap threshold (which it raises by itself only as far as the largest block freed so
/// far) with a fresh mapping and unmaps it on free, and trims the heap's top once more than twice
/// that threshold is free, so each new decode, blur or encode buffer was faulted in page by page:
/// a tenth of a 1080p JPEG blur went to page faults. Fixed thresholds (blocks up to 32 MiB come
/// from the heap; up to 32 MiB of free heap is kept) end that. What each arena keeps adds up, so
/// the arenas are capped at two (what imgproxy advises for libvips): with glibc's default of
/// eight per core the server's peak RSS under load doubled (41 to 84 MiB on the service
/// benchmark), with two it rises by a third, at no measured cost in throughput; small blocks
/// come from per-thread caches anyway. Binaries call this once, first thing in `main`; elsewhere
/// than glibc it does nothing.
#[allow(unsafe_code)]
pub fn keep_freed_buffers_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's tuning parameters, which glibc guards with its own lock;
    // every value is within the range glibc documents for it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
