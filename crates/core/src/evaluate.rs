//! Evaluation over many batches: loss, top-1, top-5, per-class counts and the confusion matrix, accumulated on
//! the device and read back once; optionally with test-time augmentation.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::batch::check_dataset_at;
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::host::host_floats;
use crate::model::Network;

/// Test-time augmentation: the logits of several views of each image, averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Tta {
    /// The image as it is.
    #[default]
    None,
    /// The image and its mirror image, averaged.
    Mirror,
    /// Half the mirror average, half the mirror averages of the image shifted one pixel up-left and down-right
    /// (reflect padding): airbench's evaluation.
    MirrorTranslate,
}

impl Tta {
    pub fn parse(name: &str) -> Result<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_owned()))
            .map_err(|_| Error::option("tta", "'none', 'mirror' or 'mirrorTranslate'", name))
    }
}

/// The logits of `net` for a normalized batch, averaged over the views `tta` names.
pub fn logits_with(net: &Network, x: &Tensor, tta: Tta) -> Result<Tensor> {
    let mirror = |x: &Tensor| -> Result<Tensor> {
        let a = net.forward_t(x, false)?;
        let b = net.forward_t(&x.f_flip([3])?, false)?;
        Ok(a.f_add(&b)?.f_mul_scalar(0.5)?)
    };
    match tta {
        Tta::None => net.forward_t(x, false),
        Tta::Mirror => mirror(x),
        Tta::MirrorTranslate => {
            let [_, _, h, w] = <[i64; 4]>::try_from(x.size()).expect("a batch is 4-d");
            let padded = x.f_reflection_pad2d([1, 1, 1, 1])?;
            let up_left = padded.f_narrow(2, 0, h)?.f_narrow(3, 0, w)?;
            let down_right = padded.f_narrow(2, 2, h)?.f_narrow(3, 2, w)?;
            let shifted = mirror(&up_left)?.f_add(&mirror(&down_right)?)?.f_mul_scalar(0.5)?;
            Ok(mirror(x)?.f_add(&shifted)?.f_mul_scalar(0.5)?)
        }
    }
}

/// Counts over an evaluated set. Accuracies are left to the caller: counts add up across calls, ratios do not.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "napi", napi_derive::napi(object))]
pub struct EvalCounts {
    /// Images evaluated.
    pub count: i64,
    /// Sum of per-image cross-entropy.
    pub loss_sum: f64,
    pub top1_correct: i64,
    /// Images whose label is among the five highest scores (or all, with fewer than five classes).
    pub top5_correct: i64,
    /// Row-major `[true][predicted]` counts, `classes × classes`: `confusion[true * classes + predicted]`.
    pub confusion: Vec<i64>,
    pub classes: i64,
}

impl EvalCounts {
    pub fn per_class_correct(&self) -> Vec<i64> {
        (0..self.classes)
            .map(|k| self.confusion[(k * self.classes + k) as usize])
            .collect()
    }

    pub fn per_class_total(&self) -> Vec<i64> {
        let k = self.classes as usize;
        self.confusion.chunks(k).map(|row| row.iter().sum()).collect()
    }
}

/// Evaluates `net` on `data` at `indices` (all of it when `None`) in batches of `batch_size`, with `tta`,
/// checking `cancel` between batches.
pub fn evaluate(
    net: &Network,
    data: &Dataset,
    indices: Option<&[i64]>,
    batch_size: usize,
    tta: Tta,
    cancel: &AtomicBool,
) -> Result<EvalCounts> {
    if data.multi_label() {
        return Err(Error::option(
            "data",
            "single-label data (multi-label data: evaluate_multi_label)",
            "multi-label data",
        ));
    }
    let (out, indices) = evaluation_indices(net, data, indices, batch_size)?;
    let indices = &indices[..];
    let classes = net.classes();
    let k = classes.min(5);
    let device = net.device;
    let _guard = tch::no_grad_guard();
    let mut loss_sum = Tensor::f_zeros([], (Kind::Double, device))?;
    let mut top1 = Tensor::f_zeros([], (Kind::Int64, device))?;
    let mut top5 = Tensor::f_zeros([], (Kind::Int64, device))?;
    let mut confusion = Tensor::f_zeros([classes * classes], (Kind::Int64, device))?;
    for chunk in indices.chunks(batch_size) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let (x, y) = data.batch(chunk, out, None)?;
        let logits = logits_with(net, &x, tta)?;
        let loss = logits.f_cross_entropy_loss::<Tensor>(&y, None, Reduction::Sum, -100, 0.0)?;
        let _ = loss_sum.f_add_(&loss.f_to_kind(Kind::Double)?)?;
        let (_, top) = logits.f_topk(k, 1, true, true)?;
        let hits = top.f_eq_tensor(&y.f_unsqueeze(1)?)?;
        let _ = top1.f_add_(&hits.f_select(1, 0)?.f_sum(Kind::Int64)?)?;
        let _ = top5.f_add_(&hits.f_sum(Kind::Int64)?)?;
        let pairs = y.f_mul_scalar(classes)?.f_add(&top.f_select(1, 0)?)?;
        let _ = confusion.f_add_(&pairs.f_bincount::<Tensor>(None, classes * classes)?)?;
    }
    let confusion = confusion.f_to_device(tch::Device::Cpu)?;
    let mut flat = vec![0i64; (classes * classes) as usize];
    let n = flat.len();
    confusion.f_copy_data(&mut flat, n)?;
    Ok(EvalCounts {
        count: indices.len() as i64,
        loss_sum: loss_sum.f_double_value(&[])?,
        top1_correct: top1.f_int64_value(&[])?,
        top5_correct: top5.f_int64_value(&[])?,
        confusion: flat,
        classes,
    })
}

/// The evaluation size, checked against the data, and the images to evaluate (all when `indices` is `None`).
fn evaluation_indices(
    net: &Network,
    data: &Dataset,
    indices: Option<&[i64]>,
    batch_size: usize,
) -> Result<([i64; 2], Vec<i64>)> {
    let out = net.eval_size();
    let field = if net.eval_input_size.is_some() {
        "evalInputSize"
    } else {
        "inputShape"
    };
    check_dataset_at(net, data, out, field)?;
    if batch_size == 0 {
        return Err(Error::option("batchSize", "an integer > 0", 0));
    }
    Ok((out, indices.map_or_else(|| (0..data.len()).collect(), <[i64]>::to_vec)))
}

/// A multi-label evaluation: every image's probabilities (ranking metrics such as average precision need them all,
/// not counts) and its loss.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    /// `count × classes` sigmoid probabilities, row by row.
    pub probabilities: Vec<f32>,
    /// Sum over images of the mean binary cross-entropy over classes.
    pub loss_sum: f64,
    pub count: i64,
}

/// [`evaluate`] for multi-label data: the probabilities of the images at `indices` (all when `None`) and their loss.
pub fn evaluate_multi_label(
    net: &Network,
    data: &Dataset,
    indices: Option<&[i64]>,
    batch_size: usize,
    tta: Tta,
    cancel: &AtomicBool,
) -> Result<LabelScores> {
    if !data.multi_label() {
        return Err(Error::option(
            "data",
            "multi-label data (targets set)",
            "single-label data",
        ));
    }
    let (out, indices) = evaluation_indices(net, data, indices, batch_size)?;
    let _guard = tch::no_grad_guard();
    let mut loss_sum = Tensor::f_zeros([], (Kind::Double, net.device))?;
    let mut parts = Vec::new();
    for chunk in indices.chunks(batch_size) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let (x, y) = data.batch(chunk, out, None)?;
        let logits = logits_with(net, &x, tta)?.f_to_kind(Kind::Float)?;
        let none: Option<&Tensor> = None;
        let loss = logits.f_binary_cross_entropy_with_logits(&y, none, none, Reduction::None)?;
        let _ = loss_sum.f_add_(&loss.f_mean_dim(&[1i64][..], false, Kind::Double)?.f_sum(Kind::Double)?)?;
        parts.push(logits.f_sigmoid()?);
    }
    let probabilities = if parts.is_empty() {
        Vec::new()
    } else {
        host_floats(&Tensor::f_cat(&parts, 0)?)?
    };
    Ok(LabelScores {
        probabilities,
        loss_sum: loss_sum.f_double_value(&[])?,
        count: indices.len() as i64,
    })
}

/// Class probabilities for a normalized float batch, one row per image, with `tta`: a softmax over the classes, or a
/// sigmoid per class for a multi-label network.
pub fn probabilities(net: &Network, x: &Tensor, tta: Tta) -> Result<Vec<f32>> {
    let _guard = tch::no_grad_guard();
    let logits = logits_with(net, x, tta)?.f_to_kind(Kind::Float)?;
    let probs = if net.multi_label {
        logits.f_sigmoid()?
    } else {
        logits.f_softmax(1, Kind::Float)?
    };
    host_floats(&probs)
}

/// Logits for a normalized float batch, one row per image, with `tta`.
pub fn logits(net: &Network, x: &Tensor, tta: Tta) -> Result<Vec<f32>> {
    let _guard = tch::no_grad_guard();
    host_floats(&logits_with(net, x, tta)?)
}
