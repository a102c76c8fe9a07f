//! Cross-entropy for training, with label smoothing, per-class weights and a summed or averaged reduction,
//! computed as `torch.nn.functional.cross_entropy(logits, y, weight=w, label_smoothing=ε, reduction=…)` does; for
//! multi-label targets, binary cross-entropy per class.

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::error::{Error, Result};

/// How the per-image losses of a batch are combined into the one that is differentiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The mean over the batch (PyTorch's default); with class weights, the sum divided by the batch's summed
    /// label weights, as PyTorch divides it.
    #[default]
    Mean,
    /// The sum: the gradient grows with the batch, as airbench's recipe wants.
    Sum,
}

impl Reduction {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            other => Err(Error::option("loss.reduction", "'mean' or 'sum'", other)),
        }
    }
}

/// The training loss.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LossConfig {
    /// ε: the target is `(1 - ε)` on the label plus `ε / classes` on every class.
    pub label_smoothing: f64,
    pub reduction: Reduction,
    /// The weight of each class's images in the loss (PyTorch's `weight`); every class weighs 1 when `None`.
    pub class_weights: Option<Vec<f64>>,
}

impl LossConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::option(
                "labelSmoothing",
                "a number in [0, 1)",
                self.label_smoothing,
            ));
        }
        if let Some(w) = &self.class_weights {
            // Zero would let a batch of only that class divide 0 by 0 under the mean reduction.
            if let Some(bad) = w.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                return Err(Error::option("classWeights", "finite numbers > 0", bad));
            }
        }
        Ok(())
    }
}

/// The training loss of a network with `classes` outputs on a device: the config, with the class weights copied
/// there once (a copy per step would wait for the queued steps on a GPU).
#[derive(Debug, Default)]
pub struct Loss {
    config: LossConfig,
    weights: Option<Tensor>,
}

impl Loss {
    pub fn new(config: LossConfig, classes: i64, device: Device) -> Result<Self> {
        config.validate()?;
        let weights = match &config.class_weights {
            None => None,
            Some(w) if w.len() as i64 != classes => {
                return Err(Error::option(
                    "classWeights",
                    format!("one weight per class ({classes})"),
                    format!("{} weights", w.len()),
                ))
            }
            Some(w) => Some(Tensor::f_from_slice(w)?.f_to_device(device)?),
        };
        Ok(Loss { config, weights })
    }

    pub fn config(&self) -> &LossConfig {
        &self.config
    }

    /// The loss to differentiate, and the plain cross-entropy of each image (no smoothing, no weights) for metrics.
    /// `y` holds class indices, or `[N, classes]` rows: multi-hot labels when `multi_label` (binary cross-entropy),
    /// else soft targets (mixup, CutMix).
    pub fn compute(&self, logits: &Tensor, y: &Tensor, multi_label: bool) -> Result<(Tensor, Tensor)> {
        match (y.dim(), multi_label) {
            (2, true) => binary_loss(logits, y, &self.config, self.weights.as_ref()),
            (2, false) => soft_target_loss(logits, y, &self.config, self.weights.as_ref()),
            _ => training_loss(logits, y, &self.config, self.weights.as_ref()),
        }
    }
}

/// [`Loss::compute`] with the class weights `weights` (on the logits' device) in place of the config's.
///
/// PyTorch's semantics, per image `i` with label `yᵢ` over `C` classes:
/// `lossᵢ = (1 - ε)·w[yᵢ]·(-log pᵢ[yᵢ]) + (ε / C)·Σ_c w[c]·(-log pᵢ[c])`; `sum` adds them up, `mean` divides
/// the sum by `Σᵢ w[yᵢ]` (the batch size when unweighted). The smoothing term weighs every class, not the label's.
pub fn training_loss(
    logits: &Tensor,
    y: &Tensor,
    config: &LossConfig,
    weights: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let kind = logits.kind();
    let logp = logits.f_log_softmax(1, kind)?;
    let nll = logp.f_gather(1, &y.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?.f_neg()?;
    let eps = config.label_smoothing;
    let (per_image, label_weights) = match weights {
        None => {
            let per_image = if eps > 0.0 {
                let smooth = logp.f_mean_dim(&[1i64][..], false, kind)?.f_neg()?;
                nll.f_mul_scalar(1.0 - eps)?.f_add(&smooth.f_mul_scalar(eps)?)?
            } else {
                nll.shallow_clone()
            };
            (per_image, None)
        }
        Some(w) => {
            let w = w.f_to_kind(kind)?;
            let wy = w.f_index_select(0, y)?;
            let mut per_image = nll.f_mul(&wy)?;
            if eps > 0.0 {
                let classes = logp.size()[1] as f64;
                let smooth = logp
                    .f_mul(&w.f_unsqueeze(0)?)?
                    .f_sum_dim_intlist(&[1i64][..], false, kind)?
                    .f_neg()?;
                per_image = per_image
                    .f_mul_scalar(1.0 - eps)?
                    .f_add(&smooth.f_mul_scalar(eps / classes)?)?;
            }
            (per_image, Some(wy))
        }
    };
    let loss = match (config.reduction, label_weights) {
        (Reduction::Mean, None) => per_image.f_mean(kind)?,
        (Reduction::Mean, Some(wy)) => per_image.f_sum(kind)?.f_div(&wy.f_sum(kind)?)?,
        (Reduction::Sum, _) => per_image.f_sum(kind)?,
    };
    Ok((loss, nll.f_detach()?))
}

/// Soft targets `y` (`[N, classes]`, rows summing to 1: mixup and CutMix), as
/// `torch.nn.functional.cross_entropy(logits, t, weight=w, reduction=…)` with probability targets:
/// `lossᵢ = −Σ_c w[c]·tᵢ[c]·log pᵢ[c]` with `t = y·(1 − ε) + ε/classes`; `mean` divides by N (PyTorch does not divide
/// by the weights with probability targets). For metrics, the unsmoothed, unweighted cross-entropy of each image.
fn soft_target_loss(
    logits: &Tensor,
    y: &Tensor,
    config: &LossConfig,
    weights: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let kind = logits.kind();
    let logp = logits.f_log_softmax(1, kind)?;
    let y = y.f_to_kind(kind)?;
    let classes = logp.size()[1] as f64;
    let eps = config.label_smoothing;
    let plain = logp.f_mul(&y)?.f_sum_dim_intlist(&[1i64][..], false, kind)?.f_neg()?;
    let t = if eps > 0.0 {
        y.f_mul_scalar(1.0 - eps)?.f_add_scalar(eps / classes)?
    } else {
        y
    };
    let terms = logp.f_mul(&t)?;
    let terms = match weights {
        Some(w) => terms.f_mul(&w.f_to_kind(kind)?.f_unsqueeze(0)?)?,
        None => terms,
    };
    let per_image = terms.f_sum_dim_intlist(&[1i64][..], false, kind)?.f_neg()?;
    let loss = match config.reduction {
        Reduction::Mean => per_image.f_mean(kind)?,
        Reduction::Sum => per_image.f_sum(kind)?,
    };
    Ok((loss, plain.f_detach()?))
}

/// Multi-label: a sigmoid per class against multi-hot targets `y` (`[N, classes]`), as
/// `torch.nn.functional.binary_cross_entropy_with_logits(logits, t, weight=w, reduction=…)` with the targets smoothed
/// to `t = y·(1 − ε) + ε/2` (each class's own two-way label smoothing) and the class weights `w` multiplying each
/// class's term. `mean` divides the sum by N·classes, as PyTorch does. For metrics, each image's plain loss: the mean
/// over classes of the unsmoothed, unweighted terms.
fn binary_loss(logits: &Tensor, y: &Tensor, config: &LossConfig, weights: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
    let kind = logits.kind();
    let y = y.f_to_kind(kind)?;
    let eps = config.label_smoothing;
    let none: Option<&Tensor> = None;
    let terms = |target: &Tensor| logits.f_binary_cross_entropy_with_logits(target, none, none, tch::Reduction::None);
    let plain = terms(&y)?;
    let smoothed = if eps > 0.0 {
        terms(&y.f_mul_scalar(1.0 - eps)?.f_add_scalar(eps / 2.0)?)?
    } else {
        plain.shallow_clone()
    };
    let weighted = match weights {
        Some(w) => smoothed.f_mul(&w.f_to_kind(kind)?.f_unsqueeze(0)?)?,
        None => smoothed,
    };
    let loss = match config.reduction {
        Reduction::Mean => weighted.f_mean(kind)?,
        Reduction::Sum => weighted.f_sum(kind)?,
    };
    Ok((loss, plain.f_mean_dim(&[1i64][..], false, kind)?.f_detach()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two images, three classes, by hand: log-softmax rows, then the formula in [`training_loss`]'s doc.
    fn by_hand(eps: f64, w: [f64; 3], mean: bool) -> f64 {
        let logits = [[2.0f64, 0.5, -1.0], [0.0, 1.0, 3.0]];
        let labels = [0usize, 1];
        let (mut sum, mut weight_sum) = (0.0, 0.0);
        for (row, &y) in logits.iter().zip(&labels) {
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            let logp: Vec<f64> = row.iter().map(|v| v - lse).collect();
            let smooth: f64 = (0..3).map(|c| -w[c] * logp[c]).sum();
            sum += (1.0 - eps) * w[y] * -logp[y] + eps / 3.0 * smooth;
            weight_sum += w[y];
        }
        if mean {
            sum / weight_sum
        } else {
            sum
        }
    }

    fn ours(eps: f64, w: Option<[f64; 3]>, reduction: Reduction) -> f64 {
        let logits = Tensor::from_slice(&[2.0f64, 0.5, -1.0, 0.0, 1.0, 3.0]).view([2, 3]);
        let y = Tensor::from_slice(&[0i64, 1]);
        let config = LossConfig {
            label_smoothing: eps,
            reduction,
            class_weights: w.map(|w| w.to_vec()),
        };
        let loss = Loss::new(config, 3, Device::Cpu).unwrap();
        loss.compute(&logits, &y, false).unwrap().0.double_value(&[])
    }

    #[test]
    fn weighted_smoothed_cross_entropy_matches_a_hand_computation() {
        let w = [0.5, 2.0, 1.0];
        for eps in [0.0, 0.2] {
            for (reduction, mean) in [(Reduction::Mean, true), (Reduction::Sum, false)] {
                let got = ours(eps, Some(w), reduction);
                let want = by_hand(eps, w, mean);
                assert!((got - want).abs() < 1e-12, "ε {eps}, {reduction:?}: {got} vs {want}");
                // Unit weights are the unweighted loss, whose code path differs.
                let plain = ours(eps, None, reduction);
                let ones = by_hand(eps, [1.0; 3], mean);
                assert!(
                    (plain - ones).abs() < 1e-12,
                    "ε {eps}, {reduction:?}: {plain} vs {ones}"
                );
            }
        }
        // The weights change it: image 1's class weighs 4× image 0's.
        assert!((ours(0.0, Some(w), Reduction::Mean) - ours(0.0, None, Reduction::Mean)).abs() > 1e-3);
    }

    /// Two images, three classes, several labels each: the formula in [`binary_loss`]'s doc by hand.
    #[test]
    fn multi_label_loss_matches_a_hand_computation() {
        let logits = [[2.0f64, -0.5, 1.0], [0.0, 1.5, -3.0]];
        let y = [[1.0f64, 0.0, 1.0], [0.0, 1.0, 1.0]];
        let w = [0.5, 2.0, 1.0];
        let softplus = |x: f64| (1.0 + x.exp()).ln();
        let term = |z: f64, t: f64| t * softplus(-z) + (1.0 - t) * softplus(z);
        for eps in [0.0, 0.2] {
            for weighted in [false, true] {
                for reduction in [Reduction::Mean, Reduction::Sum] {
                    let mut sum = 0.0;
                    for i in 0..2 {
                        for c in 0..3 {
                            let wc = if weighted { w[c] } else { 1.0 };
                            sum += wc * term(logits[i][c], y[i][c] * (1.0 - eps) + eps / 2.0);
                        }
                    }
                    let want = if reduction == Reduction::Mean { sum / 6.0 } else { sum };
                    let config = LossConfig {
                        label_smoothing: eps,
                        reduction,
                        class_weights: weighted.then(|| w.to_vec()),
                    };
                    let x = Tensor::from_slice(logits.as_flattened()).view([2, 3]);
                    let t = Tensor::from_slice(y.as_flattened()).view([2, 3]);
                    let (loss, per_image) = Loss::new(config, 3, Device::Cpu)
                        .unwrap()
                        .compute(&x, &t, true)
                        .unwrap();
                    let got = loss.double_value(&[]);
                    assert!(
                        (got - want).abs() < 1e-12,
                        "ε {eps}, weighted {weighted}, {reduction:?}: {got} vs {want}"
                    );
                    let first: f64 = (0..3).map(|c| term(logits[0][c], y[0][c])).sum::<f64>() / 3.0;
                    assert!((per_image.double_value(&[0]) - first).abs() < 1e-12);
                }
            }
        }
    }

    /// Soft targets (a mixed batch): `−Σ_c w[c]·t[c]·log p[c]` with `t` smoothed, mean over images, by hand.
    #[test]
    fn soft_target_loss_matches_a_hand_computation() {
        let logits = [[2.0f64, 0.5, -1.0], [0.0, 1.0, 3.0]];
        let y = [[0.7f64, 0.3, 0.0], [0.0, 0.4, 0.6]];
        let w = [0.5, 2.0, 1.0];
        for eps in [0.0, 0.1] {
            for weighted in [false, true] {
                let mut sum = 0.0;
                for (row, t) in logits.iter().zip(&y) {
                    let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
                    for c in 0..3 {
                        let wc = if weighted { w[c] } else { 1.0 };
                        sum += -wc * (t[c] * (1.0 - eps) + eps / 3.0) * (row[c] - lse);
                    }
                }
                let config = LossConfig {
                    label_smoothing: eps,
                    reduction: Reduction::Mean,
                    class_weights: weighted.then(|| w.to_vec()),
                };
                let x = Tensor::from_slice(logits.as_flattened()).view([2, 3]);
                let t = Tensor::from_slice(y.as_flattened()).view([2, 3]);
                let got = Loss::new(config, 3, Device::Cpu)
                    .unwrap()
                    .compute(&x, &t, false)
                    .unwrap()
                    .0
                    .double_value(&[]);
                assert!(
                    (got - sum / 2.0).abs() < 1e-12,
                    "ε {eps}, weighted {weighted}: {got} vs {}",
                    sum / 2.0
                );
            }
        }
        // One-hot targets give the class-index loss.
        let onehot = Tensor::from_slice(&[1.0f64, 0.0, 0.0, 0.0, 1.0, 0.0]).view([2, 3]);
        let x = Tensor::from_slice(logits.as_flattened()).view([2, 3]);
        let loss = Loss::new(LossConfig::default(), 3, Device::Cpu).unwrap();
        let soft = loss.compute(&x, &onehot, false).unwrap().0.double_value(&[]);
        let hard = loss
            .compute(&x, &Tensor::from_slice(&[0i64, 1]), false)
            .unwrap()
            .0
            .double_value(&[]);
        assert!((soft - hard).abs() < 1e-12);
    }

    #[test]
    fn bad_class_weights_name_the_option() {
        let with = |w: Vec<f64>| LossConfig {
            class_weights: Some(w),
            ..LossConfig::default()
        };
        for bad in [vec![1.0, 0.0, 1.0], vec![1.0, f64::NAN, 1.0], vec![1.0, 1.0]] {
            let err = Loss::new(with(bad), 3, Device::Cpu).unwrap_err().to_string();
            assert!(err.contains("classWeights"), "{err}");
        }
    }
}
