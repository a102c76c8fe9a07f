//! Image embeddings: the spatial mean of a feature map (by default the last one, whose mean feeds the classifier of
//! every zoo network), for comparing images by what a pretrained network sees in them.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::Kind;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::explain::{node_name, target_layer};
use crate::host::host_floats;
use crate::layers::Capture;
use crate::model::Network;

/// One row per image.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// `count × dim` floats, row by row.
    pub values: Vec<f32>,
    pub dim: i64,
    /// The layer whose output was averaged (see [`crate::explain::target_layer`]).
    pub layer: String,
}

/// Embeddings of the images of `data` at `indices`, in evaluation mode. Each batch is taken at the stored size and,
/// when that differs from the network's evaluation size, resized to it bilinearly (a 32-pixel image set can be
/// embedded by a network that wants 64 or 224 pixels).
pub fn embeddings(
    net: &Network,
    data: &Dataset,
    indices: &[i64],
    batch_size: usize,
    layer: Option<&str>,
    cancel: &AtomicBool,
) -> Result<Embeddings> {
    if batch_size == 0 {
        return Err(Error::option("batchSize", "an integer > 0", 0));
    }
    let node = target_layer(net, layer)?;
    let name = node_name(node).to_owned();
    let dim = node.output_shape[0];
    let stored = [data.shape[1], data.shape[2]];
    let out = net.eval_size();
    if data.shape[0] != net.spec.input_shape[0] {
        return Err(Error::BadShape {
            what: "dataset images".into(),
            expected: format!("{} channels (the model's)", net.spec.input_shape[0]),
            got: format!("{:?}", data.shape),
        });
    }
    let _guard = tch::no_grad_guard();
    let mut values = Vec::with_capacity(indices.len() * dim as usize);
    for chunk in indices.chunks(batch_size) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let (x, _) = data.batch(chunk, stored, None)?;
        let x = if stored == out {
            x
        } else {
            x.f_upsample_bilinear2d(out, false, None, None)?
        };
        let capture = Capture::new(&name);
        let _ = net.forward_capturing(&x.f_to_device(net.device)?, false, Some(&capture))?;
        let map = capture.take()?;
        let pooled = map
            .f_to_kind(Kind::Float)?
            .f_mean_dim(&[2i64, 3][..], false, Kind::Float)?;
        values.extend(host_floats(&pooled)?);
    }
    Ok(Embeddings {
        values,
        dim,
        layer: name,
    })
}
