//! Out-of-sample class probabilities for every image from embeddings alone: a multinomial logistic regression fitted
//! on the other folds, for each fold. Confident learning (Northcutt et al. 2021) wants exactly these: probabilities
//! from a model that never saw the image's own label.

use tch::{Kind, Reduction, Tensor};

use super::{matrix, to_vec, unit_rows};
use crate::error::{Error, Result};

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
    to_vec::<f32>(&out)
}

/// Weights `[dim, classes]` and bias `[classes]` minimising mean cross-entropy plus the L2 penalty, by full-batch
/// Adam (β 0.9/0.999): on a few thousand to tens of thousands of rows it converges in a few hundred steps.
fn fit(x: &Tensor, y: &Tensor, classes: usize, o: ProbeOptions) -> Result<(Tensor, Tensor)> {
    let dim = x.size()[1];
    let opts = (Kind::Float, x.device());
    let w = Tensor::f_zeros([dim, classes as i64], opts)?.f_set_requires_grad(true)?;
    let b = Tensor::f_zeros([classes as i64], opts)?.f_set_requires_grad(true)?;
    let params = [&w, &b];
    let mut moments: Vec<(Tensor, Tensor)> = params
        .iter()
        .map(|p| Ok((p.f_zeros_like()?, p.f_zeros_like()?)))
        .collect::<Result<_>>()?;
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    for step in 1..=o.steps {
        let grads = tch::with_grad(|| -> Result<Vec<Tensor>> {
            let logits = x.f_mm(&w)?.f_add(&b)?;
            let loss = logits
                .f_cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)?
                .f_add(&w.f_square()?.f_sum(Kind::Float)?.f_mul_scalar(o.weight_decay / 2.0)?)?;
            Ok(Tensor::f_run_backward(&[&loss], &params, false, false)?)
        })?;
        tch::no_grad(|| -> Result<()> {
            let (c1, c2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
            for ((p, g), (m, v)) in params.iter().zip(&grads).zip(moments.iter_mut()) {
                let _ = m.f_mul_scalar_(beta1)?.f_add_(&g.f_mul_scalar(1.0 - beta1)?)?;
                let _ = v
                    .f_mul_scalar_(beta2)?
                    .f_add_(&g.f_square()?.f_mul_scalar(1.0 - beta2)?)?;
                let denom = v.f_div_scalar(c2)?.f_sqrt()?.f_add_scalar(eps)?;
                let update = m.f_div_scalar(c1)?.f_div(&denom)?.f_mul_scalar(o.learning_rate)?;
                let _ = p.shallow_clone().f_sub_(&update)?;
            }
            Ok(())
        })?;
    }
    Ok((w.f_detach()?, b.f_detach()?))
}
