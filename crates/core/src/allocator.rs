//! How freed memory goes back to the system. libtorch's CPU allocator takes every batch's activations from
//! malloc and frees them at the end of the batch. glibc serves blocks above its mmap threshold with fresh
//! mappings and returns them on free, and trims the heap top above its trim threshold, so each batch faults
//! in new zeroed pages: page faults and page clearing were 18 % of a training epoch's `perf` samples here.
//! Keeping blocks of up to 32 MiB (the most glibc allows) on the heap, and up to 256 MiB of free heap before
//! trimming, made evaluation about 45 % faster on the 2-core machine (bench/RESULTS.md).
//!
//! Blocks larger than that still came from fresh mappings every batch (libtorch's worker threads allocate from
//! glibc arenas that always map blocks that size), which at airbench94's batch of 1024 still left 17 % of an
//! epoch in page faults. So libtorch's CPU allocator is replaced by a caching one (`cpp/cpu_cache.cpp`): freed
//! blocks of 1 MiB and more are kept, up to a cap, for the next tensor of the same (rounded) size.

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

/// Blocks smaller than this go to malloc as before.
const CACHED_BLOCK_MIN: u64 = 1 << 20;
/// Free blocks kept by default, in MiB.
const CACHE_CAP_MB_DEFAULT: u64 = 2048;

extern "C" {
    fn ck_cpu_cache_install(min_block: u64, cap: u64) -> std::ffi::c_int;
    fn ck_cpu_cache_stats(out: *mut u64) -> std::ffi::c_int;
    fn ck_cpu_cache_trim() -> u64;
}

/// Installs the caching CPU allocator with a cap of `CONVKIT_CPU_CACHE_MB` MiB of free blocks (default 2048;
/// 0 leaves libtorch's own allocator in place). Returns whether it is installed. Call before the first tensor.
pub fn cache_large_blocks() -> bool {
    let cap_mb = std::env::var("CONVKIT_CPU_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(CACHE_CAP_MB_DEFAULT);
    if cap_mb == 0 {
        return false;
    }
    // SAFETY: installs once (later calls return -1 and change nothing); the allocator lives until exit.
    unsafe { ck_cpu_cache_install(CACHED_BLOCK_MIN, cap_mb << 20) };
    cpu_cache_stats().is_some()
}

/// What the caching CPU allocator has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Large allocations served from a cached block.
    pub hits: u64,
    /// Large allocations that needed a new block.
    pub misses: u64,
    /// Bytes of free blocks held for reuse.
    pub cached_bytes: u64,
    /// Large blocks in use by tensors.
    pub live_blocks: u64,
}

/// Hands the caching allocator's free blocks back to the system and returns how many bytes that was (0 when it is
/// not installed). For after work whose blocks the next work will not reuse: a precision probe leaves blocks of
/// both precisions' activation sizes, and training then allocates only one precision's.
///
/// The blocks go back through `free`, and those under the raised mmap threshold (`keep_freed_memory`) land in glibc's
/// heaps, where they stay mapped (only the main heap's top is ever trimmed, and libtorch's worker threads allocate
/// from arenas of their own); so glibc is asked to hand back the free pages of every arena as well.
pub fn trim_cpu_cache() -> u64 {
    // SAFETY: takes no arguments; frees only blocks no tensor holds.
    let freed = unsafe { ck_cpu_cache_trim() };
    release_free_heap_pages();
    freed
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap_pages() {
    // SAFETY: malloc_trim only returns whole free pages of glibc's arenas to the system; no live block moves.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap_pages() {}

/// The caching allocator's counters, or `None` when it is not installed.
pub fn cpu_cache_stats() -> Option<CacheStats> {
    let mut out = [0u64; 4];
    // SAFETY: writes exactly four values.
    let installed = unsafe { ck_cpu_cache_stats(out.as_mut_ptr()) } == 1;
    installed.then_some(CacheStats {
        hits: out[0],
        misses: out[1],
        cached_bytes: out[2],
        live_blocks: out[3],
    })
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn glibc_accepts_the_thresholds() {
        assert!(super::keep_freed_memory());
    }
}

#[cfg(test)]
mod cache_tests {
    use std::sync::Mutex;
    use tch::{Device, Kind, Tensor};

    /// The trim frees every cached block: the test that counts a cache hit must not run beside it.
    static CACHE: Mutex<()> = Mutex::new(());

    #[test]
    fn a_freed_large_block_serves_the_next_tensor_of_its_size_with_its_new_values() {
        let _alone = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        crate::runtime::init();
        let before = super::cpu_cache_stats().expect("installed by runtime::init");
        // 3 MiB and change: rounded up to 4 MiB, so slightly different sizes share a block.
        let first = Tensor::full([(3 << 18) + 5], 1.5, (Kind::Float, Device::Cpu));
        drop(first);
        let second = Tensor::full([(3 << 18) + 7], -2.0, (Kind::Float, Device::Cpu));
        let after = super::cpu_cache_stats().unwrap();
        assert!(after.hits > before.hits, "{before:?} -> {after:?}");
        // Tests run concurrently: another may have taken the block (a hit too); the values are what count.
        assert_eq!(
            second.sum(Kind::Double).double_value(&[]),
            -2.0 * ((3 << 18) + 7) as f64
        );
    }
    #[test]
    fn trimming_frees_the_cached_blocks_and_keeps_the_live_ones() {
        let _alone = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        crate::runtime::init();
        // 37 MiB of floats and change (a size no other test allocates): cached when dropped, freed by the trim.
        let size = (37 << 18) + 3;
        let kept = Tensor::full([size], 3.0, (Kind::Float, Device::Cpu));
        drop(Tensor::full([size], 1.0, (Kind::Float, Device::Cpu)));
        let freed = super::trim_cpu_cache();
        assert!(freed >= 38 << 20, "freed {freed} bytes");
        assert_eq!(kept.sum(Kind::Double).double_value(&[]), 3.0 * size as f64);
    }
}
