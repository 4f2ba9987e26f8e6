//! How the process's allocator treats image-sized buffers.

/// Keeps freed image buffers in the process for the next image. glibc's malloc serves a block
/// above its mmap threshold (which it raises by itself only as far as the largest block freed so
/// far) with a fresh mapping and unmaps it on free, and trims the heap's top once more than twice
/// that threshold is free, so each new decode, blur or encode buffer was faulted in page by page:
/// a tenth of a 1080p JPEG blur went to page faults. Fixed thresholds (blocks up to 32 MiB come
/// from the heap; up to 32 MiB of free heap is kept) end that, at the cost of the process
/// keeping its high-water mark of freed memory. Binaries call this once, first thing in `main`;
/// elsewhere than glibc it does nothing.
#[allow(unsafe_code)]
pub fn keep_freed_buffers_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's tuning parameters, which glibc guards with its own lock;
    // both values are within the ranges glibc documents for them.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}
