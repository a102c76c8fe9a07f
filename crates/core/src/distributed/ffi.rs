//! The C API of `cpp/c10d_bridge.h`; its error strings become results through [`crate::ffi::check`].

use std::ffi::{c_char, c_int, c_void};

pub(crate) use crate::ffi::check;

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
