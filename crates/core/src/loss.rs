//! Cross-entropy for training, with label smoothing and a summed or averaged reduction, computed as
//! `torch.nn.functional.cross_entropy(logits, y, label_smoothing=ε, reduction=…)` does.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};

/// How the per-image losses of a batch are combined into the one that is differentiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The mean over the batch (PyTorch's default).
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
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossConfig {
    /// ε: the target is `(1 - ε)` on the label plus `ε / classes` on every class.
    pub label_smoothing: f64,
    pub reduction: Reduction,
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
        Ok(())
    }
}

/// The loss to differentiate, and the plain cross-entropy of each image (no smoothing) for metrics.
pub fn training_loss(logits: &Tensor, y: &Tensor, config: &LossConfig) -> Result<(Tensor, Tensor)> {
    let kind = logits.kind();
    let logp = logits.f_log_softmax(1, kind)?;
    let nll = logp.f_gather(1, &y.f_unsqueeze(1)?, false)?.f_squeeze_dim(1)?.f_neg()?;
    let per_image = if config.label_smoothing > 0.0 {
        let eps = config.label_smoothing;
        let smooth = logp.f_mean_dim(&[1i64][..], false, kind)?.f_neg()?;
        nll.f_mul_scalar(1.0 - eps)?.f_add(&smooth.f_mul_scalar(eps)?)?
    } else {
        nll.shallow_clone()
    };
    let loss = match config.reduction {
        Reduction::Mean => per_image.f_mean(kind)?,
        Reduction::Sum => per_image.f_sum(kind)?,
    };
    Ok((loss, nll.f_detach()?))
}
