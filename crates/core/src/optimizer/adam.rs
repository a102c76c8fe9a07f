//! Adam and AdamW, as `torch.optim.Adam(W)(fused=True)` computes them.

use super::fused::{self, TensorLists};
use super::{check, OptimizerConfig};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the weights directly instead of adding an L2 term to the gradient.
    pub decoupled: bool,
}

impl AdamHyper {
    pub fn new(
        lr: Option<f64>,
        beta1: Option<f64>,
        beta2: Option<f64>,
        eps: Option<f64>,
        weight_decay: Option<f64>,
        decoupled: bool,
    ) -> Result<Self> {
        let unit = |v: f64| (0.0..1.0).contains(&v);
        Ok(AdamHyper {
            lr: check("lr", lr.unwrap_or(1e-3), lr.unwrap_or(1e-3) > 0.0, "a number > 0")?,
            beta1: check(
                "beta1",
                beta1.unwrap_or(0.9),
                unit(beta1.unwrap_or(0.9)),
                "a number in [0, 1)",
            )?,
            beta2: check(
                "beta2",
                beta2.unwrap_or(0.999),
                unit(beta2.unwrap_or(0.999)),
                "a number in [0, 1)",
            )?,
            eps: check("eps", eps.unwrap_or(1e-8), eps.unwrap_or(1e-8) > 0.0, "a number > 0")?,
            weight_decay: {
                let wd = weight_decay.unwrap_or(if decoupled { 0.01 } else { 0.0 });
                check("weightDecay", wd, wd >= 0.0, "a number >= 0")?
            },
            decoupled,
        })
    }

    pub fn config(&self) -> OptimizerConfig {
        let (lr, beta1, beta2, eps, weight_decay) = (
            Some(self.lr),
            Some(self.beta1),
            Some(self.beta2),
            Some(self.eps),
            Some(self.weight_decay),
        );
        if self.decoupled {
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
        } else {
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            }
        }
    }
}

/// One Adam(W) step of every parameter in `lists` (`state`: exp_avg, exp_avg_sq) at `step` (1-based).
pub fn update(h: &AdamHyper, lr: f64, weight_decay: f64, step: i64, lists: &TensorLists) -> Result<()> {
    fused::adam(lists, step, lr, h.beta1, h.beta2, h.eps, weight_decay, h.decoupled)
}
