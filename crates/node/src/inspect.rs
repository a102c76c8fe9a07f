//! The core's inspection math for `convkit inspect`: nearest neighbours by cosine similarity, the pixel match of the
//! pairs they find, and cross-validated linear-probe probabilities, run off the JS thread.

use convkit_core::inspect::{self, ImageBytes, Neighbours, ProbeOptions};
use napi::bindgen_prelude::{AsyncTask, Float32Array, Int32Array, Uint8Array};
use napi_derive::napi;

use crate::worker::TorchTask;

/// For each query, its `k` most similar keys, most similar first.
#[napi(object, object_from_js = false)]
pub struct BindingNeighbours {
    /// `queries × k` indices into the keys, row by row.
    pub indices: Int32Array,
    /// `queries × k` cosine similarities, each row descending.
    pub similarities: Float32Array,
    pub k: i64,
}

impl From<Neighbours> for BindingNeighbours {
    fn from(n: Neighbours) -> Self {
        BindingNeighbours {
            indices: Int32Array::new(n.indices.iter().map(|&i| i as i32).collect()),
            similarities: Float32Array::new(n.similarities),
            k: n.k,
        }
    }
}

/// The `k` nearest rows of `keys` (`keyCount × dim`) to each row of `queries` (`queryCount × dim`) by cosine
/// similarity; without keys, the queries among themselves, a row never matching itself.
#[napi(ts_return_type = "Promise<BindingNeighbours>")]
pub fn nearest_neighbours(
    queries: Float32Array,
    query_count: u32,
    keys: Option<Float32Array>,
    key_count: Option<u32>,
    dim: u32,
    k: u32,
) -> AsyncTask<TorchTask<Neighbours, BindingNeighbours>> {
    AsyncTask::new(TorchTask::new(
        move || {
            let keys = keys.as_deref().map(|values| (values, key_count.unwrap_or(0) as usize));
            inspect::nearest_neighbours(&queries, query_count as usize, keys, dim as usize, k as usize)
        },
        |_, n| Ok(n.into()),
    ))
}

/// `count` images of `[channels, height, width]` bytes each.
#[napi(object)]
pub struct BindingImageBytes {
    pub pixels: Uint8Array,
    pub count: u32,
    pub shape: Vec<u32>,
}

/// The core's view of the bytes (a shape that is not three numbers reads as none, which the core refuses).
fn image_bytes(images: &BindingImageBytes) -> ImageBytes<'_> {
    let dim = |i: usize| images.shape.get(i).map_or(0, |&d| d as usize);
    let channels = if images.shape.len() == 3 { dim(0) } else { 0 };
    ImageBytes {
        pixels: &images.pixels,
        count: images.count as usize,
        channels,
        height: dim(1),
        width: dim(2),
    }
}

/// For each query and each of its `k` neighbours (`queries × k` indices into the keys), the correlation of their
/// pictures' detail at the best shift of up to 2 pixels (see the core's `pixel_match`); without keys, the queries
/// are the keys.
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn pixel_match(
    queries: BindingImageBytes,
    keys: Option<BindingImageBytes>,
    neighbours: Int32Array,
    k: u32,
) -> AsyncTask<TorchTask<Vec<f32>, Float32Array>> {
    AsyncTask::new(TorchTask::new(
        move || {
            let neighbours: Vec<i64> = neighbours.iter().map(|&j| i64::from(j)).collect();
            inspect::pixel_match(
                image_bytes(&queries),
                keys.as_ref().map(image_bytes),
                &neighbours,
                k as usize,
            )
        },
        |_, m| Ok(Float32Array::new(m)),
    ))
}

/// How each fold's logistic regression is fitted; defaults: 200 full-batch Adam steps at 0.01, L2 0.3.
#[napi(object)]
pub struct BindingProbeOptions {
    pub steps: Option<u32>,
    pub learning_rate: Option<f64>,
    pub weight_decay: Option<f64>,
}

/// `n × classes` out-of-sample softmax probabilities: each row from a logistic regression on the rows of the other
/// folds (`folds`, one id per row).
#[napi(ts_return_type = "Promise<Float32Array>")]
pub fn cross_validated_probabilities(
    features: Float32Array,
    n: u32,
    dim: u32,
    labels: Int32Array,
    classes: u32,
    folds: Int32Array,
    options: Option<BindingProbeOptions>,
) -> AsyncTask<TorchTask<Vec<f32>, Float32Array>> {
    let defaults = ProbeOptions::default();
    let probe = options.map_or(defaults, |o| ProbeOptions {
        steps: o.steps.map_or(defaults.steps, |s| s as usize),
        learning_rate: o.learning_rate.unwrap_or(defaults.learning_rate),
        weight_decay: o.weight_decay.unwrap_or(defaults.weight_decay),
    });
    AsyncTask::new(TorchTask::new(
        move || {
            let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
            inspect::cross_validated_probabilities(
                &features,
                n as usize,
                dim as usize,
                &labels,
                classes as usize,
                &folds,
                probe,
            )
        },
        |_, p| Ok(Float32Array::new(p)),
    ))
}
