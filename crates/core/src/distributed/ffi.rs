//! The C API of `cpp/c10d_bridge.h`, and its error strings as Rust results (the convention of every C++ file of the
//! crate, `cpp/guarded_call.h`).

use std::ffi::{c_char, c_int, c_void, CStr};

#[repr(C)]
pub struct RawStore {
    _p: [u8; 0],
}

#[repr(C)]
pub struct RawPg {
    _p: [u8; 0],
}

#[repr(C)]
pub struct RawWork {
    _p: [u8; 0],
}

extern "C" {
    pub fn ck_c10d_free_error(err: *mut c_char);
    pub fn ck_c10d_rendezvous(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world_size: c_int,
        timeout_ms: i64,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    pub fn ck_c10d_store_destroy(store: *mut RawStore);
    pub fn ck_c10d_pg_gloo_create(
        store: *mut RawStore,
        rank: c_int,
        world_size: c_int,
        timeout_ms: i64,
        hostname: *const c_char,
        out: *mut *mut RawPg,
    ) -> *mut c_char;
    pub fn ck_c10d_pg_destroy(pg: *mut RawPg);
    pub fn ck_c10d_allreduce_sum_start(pg: *mut RawPg, tensor: *mut c_void, out: *mut *mut RawWork) -> *mut c_char;
    pub fn ck_c10d_work_wait(work: *mut RawWork, wait_ms: i64) -> *mut c_char;
    pub fn ck_c10d_work_destroy(work: *mut RawWork);
    pub fn ck_c10d_broadcast(pg: *mut RawPg, tensor: *mut c_void, root: c_int, wait_ms: i64) -> *mut c_char;
    pub fn ck_c10d_barrier(pg: *mut RawPg, wait_ms: i64) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    pub fn ck_c10d_sync_batch_norm(
        pg: *mut RawPg,
        input: *mut c_void,
        weight: *mut c_void,
        bias: *mut c_void,
        running_mean: *mut c_void,
        running_var: *mut c_void,
        momentum: f64,
        eps: f64,
        out: *mut *mut c_void,
    ) -> *mut c_char;
}

/// `Ok` for a null error, else the message (freed on the C++ side's allocator).
pub fn check(err: *mut c_char) -> Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the bridge, released exactly once here.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { ck_c10d_free_error(err) };
    Err(msg)
}

/// [`check`] for the bridge's calls outside distributed training (fused optimizer kernels, host⇄GPU copies, the
/// operator counter): a failure there is libtorch's, named by `what`.
pub fn check_torch(what: &str, err: *mut c_char) -> crate::error::Result<()> {
    check(err).map_err(|m| crate::error::Error::torch(format!("{what}: {m}")))
}
