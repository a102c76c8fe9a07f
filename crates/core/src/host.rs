//! Tensors read back to the host as plain vectors: how results leave libtorch.

use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// A tensor's values as `T` (of `kind`) on the host, row by row, whatever its dtype, device or layout: how results
/// go back.
fn host_values<T: tch::kind::Element + Copy>(t: &Tensor, kind: Kind) -> Result<Vec<T>> {
    let flat = t
        .f_to_kind(kind)?
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_view([-1])?;
    Ok(Vec::<T>::try_from(flat)?)
}

/// [`host_values`] as `f32` (logits, probabilities, embeddings).
pub fn host_floats(t: &Tensor) -> Result<Vec<f32>> {
    host_values(t, Kind::Float)
}

/// [`host_values`] for integer tensors (class indices, neighbour indices), as `i64`.
pub fn host_indices(t: &Tensor) -> Result<Vec<i64>> {
    host_values(t, Kind::Int64)
}

/// [`host_values`] as bytes (uint8 pixels).
pub fn host_bytes(t: &Tensor) -> Result<Vec<u8>> {
    host_values(t, Kind::Uint8)
}
