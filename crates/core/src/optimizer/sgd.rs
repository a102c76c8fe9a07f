//! SGD with momentum, dampening and Nesterov, as `torch.optim.SGD(fused=True)` computes it, with an optional
//! decoupled weight decay.

use super::fused::{self, TensorLists};
use super::{check, OptimizerConfig};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdHyper {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub decoupled: bool,
}

impl SgdHyper {
    pub fn new(
        lr: Option<f64>,
        momentum: Option<f64>,
        dampening: Option<f64>,
        nesterov: Option<bool>,
        weight_decay: Option<f64>,
        decoupled: Option<bool>,
    ) -> Result<Self> {
        let h = SgdHyper {
            lr: check("lr", lr.unwrap_or(1e-2), lr.unwrap_or(1e-2) > 0.0, "a number > 0")?,
            momentum: check(
                "momentum",
                momentum.unwrap_or(0.0),
                momentum.unwrap_or(0.0) >= 0.0,
                "a number >= 0",
            )?,
            dampening: check(
                "dampening",
                dampening.unwrap_or(0.0),
                dampening.unwrap_or(0.0) >= 0.0,
                "a number >= 0",
            )?,
            nesterov: nesterov.unwrap_or(false),
            weight_decay: check(
                "weightDecay",
                weight_decay.unwrap_or(0.0),
                weight_decay.unwrap_or(0.0) >= 0.0,
                "a number >= 0",
            )?,
            decoupled: decoupled.unwrap_or(false),
        };
        if h.nesterov && (h.momentum <= 0.0 || h.dampening != 0.0) {
            return Err(Error::option(
                "optimizer.nesterov",
                "momentum > 0 and dampening 0",
                "nesterov",
            ));
        }
        Ok(h)
    }

    pub fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Sgd {
            lr: Some(self.lr),
            momentum: Some(self.momentum),
            dampening: Some(self.dampening),
            nesterov: Some(self.nesterov),
            weight_decay: Some(self.weight_decay),
            decoupled_weight_decay: Some(self.decoupled),
        }
    }
}

/// One SGD step of every parameter in `lists` (`state`: the momentum buffers, when there is momentum);
/// `first_step`: the buffers are new.
pub fn update(h: &SgdHyper, lr: f64, weight_decay: f64, lists: &TensorLists, first_step: bool) -> Result<()> {
    fused::sgd(
        lists,
        lr,
        h.momentum,
        h.dampening,
        h.nesterov,
        weight_decay,
        h.decoupled,
        first_step,
    )
}
