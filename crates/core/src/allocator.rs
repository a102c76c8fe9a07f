//! How freed memory goes back to the system. libtorch's CPU allocator takes every batch's activations from
//! malloc and frees them at the end of the batch. glibc serves blocks above its mmap threshold with fresh
//! mappings and returns them on free, and trims the heap top above its trim threshold, so each batch faults
//! in new zeroed pages: page faults and page clearing were 18 % of a training epoch's `perf` samples here.
//! Keeping blocks of up to 32 MiB (the most glibc allows) on the heap, and up to 256 MiB of free heap before
//! trimming, made evaluation about 45 % faster on the 2-core machine (bench/RESULTS.md).

/// The largest mmap threshold glibc accepts on 64-bit: `DEFAULT_MMAP_THRESHOLD_MAX`.
const MMAP_THRESHOLD: i32 = 32 << 20;
const TRIM_THRESHOLD: i32 = 256 << 20;

/// Applies the thresholds above, unless `CONVKIT_MALLOC_TUNING=0` or the user set glibc's own
/// `GLIBC_TUNABLES` for malloc. Returns whether it did.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() -> bool {
    let off = std::env::var("CONVKIT_MALLOC_TUNING").is_ok_and(|v| v == "0");
    let user_tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|v| v.contains("glibc.malloc."));
    if off || user_tuned {
        return false;
    }
    // SAFETY: mallopt only changes glibc's allocator parameters; both values are in the ranges it accepts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_accepts_the_thresholds() {
        assert!(super::keep_freed_memory());
    }
}
