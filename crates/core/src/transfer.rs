//! Host-to-device copies of the small tensors a training step makes on the host (batch indices, augmentation
//! draws) that do not make the host wait for the GPU (see `cpp/host_transfer.h` for why a plain copy does).

use std::ffi::{c_char, c_int, c_void};

use tch::{Device, Tensor};

use crate::error::{Error, Result};

extern "C" {
    fn ck_host_to_cuda_async(t: *mut c_void, device_index: c_int, out: *mut *mut c_void) -> *mut c_char;
}

/// `host` on `device`: itself on the CPU; on CUDA a copy queued on the device's stream through pinned memory.
pub fn to_device(host: Tensor, device: Device) -> Result<Tensor> {
    let index = match device {
        Device::Cuda(i) => i as c_int,
        _ => return Ok(host.f_to_device(device)?),
    };
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: `host` is a live at::Tensor for the call; on success `out` is a new at::Tensor* nothing else owns.
    crate::distributed::ffi::check(unsafe { ck_host_to_cuda_async(host.as_ptr() as *mut c_void, index, &mut out) })
        .map_err(|m| Error::Torch(tch::TchError::Torch(format!("copying to {device:?}: {m}"))))?;
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}
