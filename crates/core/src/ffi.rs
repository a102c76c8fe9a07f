//! Error strings from the C++ bridge (`cpp/`) as Rust results: the convention of every C++ file of the crate
//! (`cpp/guarded_call.h`). It sits below every module that calls into the bridge (fused optimizer kernels, host⇄GPU
//! copies, the operator counter, the collectives).

use std::ffi::{c_char, CStr};

use crate::error::{Error, Result};

extern "C" {
    fn ck_c10d_free_error(err: *mut c_char);
}

/// `Ok` for a null error, else the message (freed on the C++ side's allocator).
pub fn check(err: *mut c_char) -> std::result::Result<(), String> {
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
pub fn check_torch(what: &str, err: *mut c_char) -> Result<()> {
    check(err).map_err(|m| Error::torch(format!("{what}: {m}")))
}
