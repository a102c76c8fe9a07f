//! Out-of-sample class probabilities for every image from embeddings alone: a multinomial logistic regression fitted
//! on the other folds, for each fold. Confident learning (Northcutt et al. 2021) wants exactly these: probabilities
//! from a model that never saw the image's own label.

use tch::{Kind, Reduction, Tensor};

use super::{matrix, unit_rows};
use crate::error::{Error, Result};
use crate::host::host_floats;
use crate::optimizer::fused::{self, TensorLists};

/// How each fold's regression is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeOptions {
    /// Full-batch Adam steps.
    pub steps: usize,
    pub learning_rate: f64,
    /// L2 penalty on the weights, `λ/2 · ‖W‖²` added to the mean cross-entropy.
    pub weight_decay: f64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            steps: 200,
            learning_rate: 0.01,
            // Strong: on 5 000 CIFAR-10 images' EfficientNet-Lite0 embeddings, 0.3 gave 67.7 % out-of-sample
            // accuracy against 52.4 % at 1e-4, 66.3 % at 0.1 and 66.4 % at 1 (standardized 1 280-d features).
            weight_decay: 0.3,
        }
    }
}

/// `n × classes` softmax probabilities: row `i` from the regression fitted on every row whose `folds` entry differs
/// from `folds[i]`. Features are scaled to unit length, then standardized with the training folds' statistics.
pub fn cross_validated_probabilities(
    features: &[f32],
    n: usize,
    dim: usize,
    labels: &[i64],
    classes: usize,
    folds: &[i32],
    options: ProbeOptions,
) -> Result<Vec<f32>> {
    if labels.len() != n || folds.len() != n {
        return Err(Error::BadShape {
            what: "labels and folds".into(),
            expected: format!("{n} each (one per row)"),
            got: format!("{} labels, {} folds", labels.len(), folds.len()),
        });
    }
    if let Some((position, &label)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l as usize >= classes) {
        return Err(Error::LabelOutOfRange {
            what: "probe labels".into(),
            label,
            position,
            classes: classes as i64,
        });
    }
    let x = unit_rows(&matrix(features, n, dim, "features")?)?;
    let y = Tensor::f_from_slice(labels)?;
    let fold_ids = Tensor::f_from_slice(folds)?;
    let mut distinct: Vec<i32> = folds.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(Error::option("folds", "at least two distinct folds", distinct.len()));
    }
    let mut out = Tensor::f_zeros([n as i64, classes as i64], (Kind::Float, x.device()))?;
    for fold in distinct {
        let held = fold_ids.f_eq(fold as i64)?;
        let test_rows = held.f_nonzero()?.f_squeeze_dim(1)?;
        let train_rows = held.f_logical_not()?.f_nonzero()?.f_squeeze_dim(1)?;
        let (train_x, train_y) = (x.f_index_select(0, &train_rows)?, y.f_index_select(0, &train_rows)?);
        let mean = train_x.f_mean_dim(&[0i64][..], true, Kind::Float)?;
        let std = train_x.f_std_dim(&[0i64][..], false, true)?.f_clamp_min(1e-6)?;
        let standardize = |t: &Tensor| -> Result<Tensor> { Ok(t.f_sub(&mean)?.f_div(&std)?) };
        let (w, b) = fit(&standardize(&train_x)?, &train_y, classes, options)?;
        let test_x = standardize(&x.f_index_select(0, &test_rows)?)?;
        let probs = tch::no_grad(|| -> Result<Tensor> { Ok(test_x.f_mm(&w)?.f_add(&b)?.f_softmax(1, Kind::Float)?) })?;
        let _ = out.f_index_copy_(0, &test_rows, &probs)?;
    }
    host_floats(&out)
}

/// Weights `[dim, classes]` and bias `[classes]` minimising mean cross-entropy plus the L2 penalty (on the weights
/// only, so it is in the loss, not Adam's own weight decay, which would reach the bias too), by full-batch Adam
/// (β 0.9/0.999, the optimizers' fused step): on a few thousand to tens of thousands of rows it converges in a few
/// hundred steps.
fn fit(x: &Tensor, y: &Tensor, classes: usize, o: ProbeOptions) -> Result<(Tensor, Tensor)> {
    let dim = x.size()[1];
    let opts = (Kind::Float, x.device());
    let w = Tensor::f_zeros([dim, classes as i64], opts)?.f_set_requires_grad(true)?;
    let b = Tensor::f_zeros([classes as i64], opts)?.f_set_requires_grad(true)?;
    // Adam's two moments (exp_avg, exp_avg_sq), each a tensor per parameter.
    let zeros = || -> Result<Vec<Tensor>> { Ok(vec![w.f_zeros_like()?, b.f_zeros_like()?]) };
    let state = [zeros()?, zeros()?];
    for step in 1..=o.steps {
        let grads = tch::with_grad(|| -> Result<Vec<Tensor>> {
            let logits = x.f_mm(&w)?.f_add(&b)?;
            let loss = logits
                .f_cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)?
                .f_add(&w.f_square()?.f_sum(Kind::Float)?.f_mul_scalar(o.weight_decay / 2.0)?)?;
            Ok(Tensor::f_run_backward(&[&loss], &[&w, &b], false, false)?)
        })?;
        let lists = TensorLists {
            params: vec![w.shallow_clone(), b.shallow_clone()],
            grads,
            state: state
                .iter()
                .map(|s| s.iter().map(Tensor::shallow_clone).collect())
                .collect(),
        };
        tch::no_grad(|| fused::adam(&lists, step as i64, o.learning_rate, 0.9, 0.999, 1e-8, 0.0, false))?;
    }
    Ok((w.f_detach()?, b.f_detach()?))
}
