//! Copies of the small tensors a training step exchanges with a GPU (batch indices and augmentation draws in, its
//! report out) that do not make the host wait for the GPU's queue (see `cpp/host_transfer.h` for why a plain copy
//! does).

use std::ffi::{c_char, c_int, c_void};

use tch::{Device, Tensor};

use crate::error::Result;
use crate::ffi::check_torch;

#[repr(C)]
struct RawHostCopy {
    _p: [u8; 0],
}

extern "C" {
    fn ck_host_to_cuda_async(t: *mut c_void, device_index: c_int, out: *mut *mut c_void) -> *mut c_char;
    fn ck_to_host_start(t: *mut c_void, out: *mut *mut RawHostCopy) -> *mut c_char;
    fn ck_to_host_finish(copy: *mut RawHostCopy, out: *mut *mut c_void) -> *mut c_char;
    fn ck_to_host_abandon(copy: *mut RawHostCopy);
}

/// `host` on `device`: itself on the CPU; on CUDA a copy queued on the device's stream through pinned memory.
pub fn to_device(host: Tensor, device: Device) -> Result<Tensor> {
    let index = match device {
        Device::Cuda(i) => i as c_int,
        _ => return Ok(host.f_to_device(device)?),
    };
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: `host` is a live at::Tensor for the call; on success `out` is a new at::Tensor* nothing else owns.
    check_torch(&format!("copying to {device:?}"), unsafe {
        ck_host_to_cuda_async(host.as_ptr() as *mut c_void, index, &mut out)
    })?;
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

/// A copy of a device tensor to the host, queued where it was started; [`HostCopy::wait`] waits for it alone.
#[derive(Debug)]
pub struct HostCopy {
    raw: *mut RawHostCopy,
}

// SAFETY: the handle owns its tensor and event outright; nothing else refers to it.
unsafe impl Send for HostCopy {}

impl HostCopy {
    /// Queues the copy of `t` (taken as it is when it is on the host already).
    pub fn start(t: &Tensor) -> Result<Self> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `t` is a live at::Tensor for the call; on success `raw` is a handle this value now owns.
        check_torch("copying to the host", unsafe {
            ck_to_host_start(t.as_ptr() as *mut c_void, &mut raw)
        })?;
        Ok(HostCopy { raw })
    }

    /// Waits for the copy and returns the host tensor.
    pub fn wait(mut self) -> Result<Tensor> {
        let raw = std::mem::replace(&mut self.raw, std::ptr::null_mut());
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: `raw` came from ck_to_host_start and is released by this call, exactly once (Drop skips null);
        // on success `out` is a new at::Tensor* nothing else owns.
        check_torch("copying to the host", unsafe { ck_to_host_finish(raw, &mut out) })?;
        Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
    }
}

impl Drop for HostCopy {
    fn drop(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: a handle not consumed by `wait`, released once.
            unsafe { ck_to_host_abandon(self.raw) };
        }
    }
}
