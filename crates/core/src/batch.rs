//! Checks that images fit a network, and the batches made of them: dataset images, or flat buffers sent from the
//! caller, on the network's device.

use tch::Tensor;

use crate::dataset::{Dataset, Normalization};
use crate::error::{Error, Result};
use crate::model::Network;

/// Fails unless the dataset's images fit the network's input for training (same channels, at least its height
/// and width), its classes are among the network's, and it lives on the network's device.
pub fn check_dataset(net: &Network, data: &Dataset) -> Result<()> {
    check_dataset_at(net, data, net.input_size(), "inputShape")
}

/// As [`check_dataset`], for images fed to the network at `[h, w]`, the size `what` names.
pub fn check_dataset_at(net: &Network, data: &Dataset, [h, w]: [i64; 2], what: &str) -> Result<()> {
    let c = net.spec.input_shape[0];
    if data.shape[0] != c || data.shape[1] < h || data.shape[2] < w {
        return Err(Error::BadShape {
            what: "dataset images".into(),
            expected: format!("[{c}, ≥{h}, ≥{w}] (the model's {what}, or larger for crops)"),
            got: format!("{:?}", data.shape),
        });
    }
    if data.classes > net.classes() {
        return Err(Error::BadShape {
            what: "dataset classes".into(),
            expected: format!("at most {} (the model's outputs)", net.classes()),
            got: data.classes.to_string(),
        });
    }
    if data.device() != net.device {
        return Err(Error::option(
            "dataset device",
            format!("{:?}, the model's", net.device),
            format!("{:?}", data.device()),
        ));
    }
    Ok(())
}

/// Checks that `len` values of `unit` hold `count` images of the network's channels at `[h, w]`; returns
/// `[N, C, H, W]`.
fn batch_shape(net: &Network, [h, w]: [i64; 2], len: usize, count: usize, unit: &str, what: &str) -> Result<[i64; 4]> {
    let c = net.spec.input_shape[0];
    let n = count as i64;
    if count == 0 || len as i64 != n * c * h * w {
        return Err(Error::BadShape {
            what: what.into(),
            expected: format!("{n} × {c}×{h}×{w} = {} {unit} (N, C, H, W)", n * c * h * w),
            got: format!("{len} {unit}"),
        });
    }
    Ok([n, c, h, w])
}

/// Checks a flat float buffer against `count` images of the network's channels at `size` and makes a batch of it.
pub fn floats_to_batch(net: &Network, size: [i64; 2], pixels: &[f32], count: usize, what: &str) -> Result<Tensor> {
    let shape = batch_shape(net, size, pixels.len(), count, "floats", what)?;
    Ok(Tensor::f_from_slice(pixels)?.f_view(shape)?.f_to_device(net.device)?)
}

/// Checks uint8 pixels `[N, C, H, W]` against `count` images of the network's channels at `size`, then normalizes
/// them into a float batch on the network's device.
pub fn pixels_to_batch(
    net: &Network,
    size: [i64; 2],
    pixels: &[u8],
    count: usize,
    norm: &Normalization,
    what: &str,
) -> Result<Tensor> {
    let shape = batch_shape(net, size, pixels.len(), count, "bytes", what)?;
    norm.validate(shape[1])?;
    let x = Tensor::f_from_slice(pixels)?.f_view(shape)?.f_to_device(net.device)?;
    norm.apply(&x)
}
