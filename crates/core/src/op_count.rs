//! How many ATen operators a piece of work dispatches at the top level (`cpp/op_count.cpp`): on a GPU about one
//! kernel launch each, so the launch cost of a training step can be measured, and pinned by tests, on the CPU.

use std::ffi::c_char;

use crate::error::Result;
use crate::ffi::check_torch;

extern "C" {
    fn ck_op_count_begin() -> *mut c_char;
    fn ck_op_count_end(out: *mut i64) -> *mut c_char;
}

/// Runs `f` on this thread and returns its result with the number of top-level operators it dispatched here.
pub fn count_ops<T>(f: impl FnOnce() -> T) -> Result<(T, u64)> {
    // SAFETY: both calls only touch this thread's counter and callback, and catch every C++ exception.
    check_torch("counting operators", unsafe { ck_op_count_begin() })?;
    let out = f();
    let mut count = 0i64;
    check_torch("counting operators", unsafe { ck_op_count_end(&mut count) })?;
    Ok((out, count as u64))
}
