//! Adam, AdamW and SGD, written out with the same arithmetic as PyTorch's single-tensor implementations,
//! so that their state is ours to save and a resumed run continues exactly.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::error::{Error, Result};

/// Which optimizer, with its hyper-parameters. Defaults are PyTorch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    #[serde(rename_all = "camelCase")]
    Adam {
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    #[serde(rename_all = "camelCase")]
    Adamw {
        lr: f64,
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "eps")]
        eps: f64,
        #[serde(default = "adamw_decay")]
        weight_decay: f64,
    },
    #[serde(rename_all = "camelCase")]
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        dampening: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn adamw_decay() -> f64 {
    0.01
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam {
            lr: 1e-3,
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    pub fn from_json(json: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| Error::option("optimizer", "adam, adamw or sgd with a positive lr", e))?;
        config.validate()?;
        Ok(config)
    }

    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Adamw { lr, .. } | OptimizerConfig::Sgd { lr, .. } => {
                *lr
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let lr = self.lr();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::option("optimizer.lr", "a finite number > 0", lr));
        }
        match self {
            OptimizerConfig::Adam {
                beta1,
                beta2,
                weight_decay,
                ..
            }
            | OptimizerConfig::Adamw {
                beta1,
                beta2,
                weight_decay,
                ..
            } => {
                for (field, v) in [("optimizer.beta1", beta1), ("optimizer.beta2", beta2)] {
                    if !(0.0..1.0).contains(v) {
                        return Err(Error::option(field, "a number in [0, 1)", v));
                    }
                }
                if *weight_decay < 0.0 {
                    return Err(Error::option("optimizer.weightDecay", "a number >= 0", weight_decay));
                }
            }
            OptimizerConfig::Sgd {
                momentum,
                nesterov,
                dampening,
                weight_decay,
                ..
            } => {
                if *momentum < 0.0 || *weight_decay < 0.0 {
                    return Err(Error::option(
                        "optimizer.momentum",
                        "momentum and weightDecay >= 0",
                        momentum,
                    ));
                }
                if *nesterov && (*momentum <= 0.0 || *dampening != 0.0) {
                    return Err(Error::option(
                        "optimizer.nesterov",
                        "momentum > 0 and dampening 0",
                        "nesterov",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An optimizer with its per-parameter state: Adam's two moments, or SGD's momentum buffer.
#[derive(Debug)]
pub struct Optimizer {
    pub config: OptimizerConfig,
    /// Steps taken so far.
    pub step: i64,
    /// Per-parameter state tensors, keyed `<param>.exp_avg`, `<param>.exp_avg_sq` or `<param>.momentum_buffer`.
    pub state: Vec<(String, Tensor)>,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Optimizer {
            config,
            step: 0,
            state: Vec::new(),
        })
    }

    pub fn set_lr(&mut self, new_lr: f64) -> Result<()> {
        if !(new_lr.is_finite() && new_lr > 0.0) {
            return Err(Error::option("lr", "a finite number > 0", new_lr));
        }
        match &mut self.config {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Adamw { lr, .. } | OptimizerConfig::Sgd { lr, .. } => {
                *lr = new_lr
            }
        }
        Ok(())
    }

    fn state_for(&mut self, key: String, like: &Tensor) -> Result<Tensor> {
        if let Some((_, t)) = self.state.iter().find(|(k, _)| *k == key) {
            return Ok(t.shallow_clone());
        }
        let t = like.f_zeros_like()?;
        self.state.push((key, t.shallow_clone()));
        Ok(t)
    }

    /// Applies one update from the gradients held by `params`, then zeroes those gradients.
    pub fn step(&mut self, params: &mut [(String, Tensor)]) -> Result<()> {
        self.step += 1;
        let step = self.step as f64;
        let _guard = tch::no_grad_guard();
        for (name, param) in params.iter_mut() {
            let mut grad = param.grad();
            if !grad.defined() {
                continue;
            }
            match self.config.clone() {
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
                | OptimizerConfig::Adamw {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let decoupled = matches!(self.config, OptimizerConfig::Adamw { .. });
                    let g = if weight_decay == 0.0 {
                        grad.shallow_clone()
                    } else if decoupled {
                        let _ = param.f_mul_scalar_(1.0 - lr * weight_decay)?;
                        grad.shallow_clone()
                    } else {
                        grad.f_add(&param.f_mul_scalar(weight_decay)?)?
                    };
                    let mut exp_avg = self.state_for(format!("{name}.exp_avg"), param)?;
                    let mut exp_avg_sq = self.state_for(format!("{name}.exp_avg_sq"), param)?;
                    let _ = exp_avg.f_lerp_(&g, 1.0 - beta1)?;
                    let _ = exp_avg_sq.f_mul_scalar_(beta2)?;
                    let _ = exp_avg_sq.f_addcmul_(&g, &g.f_mul_scalar(1.0 - beta2)?)?;
                    let bias_correction1 = 1.0 - beta1.powf(step);
                    let bias_correction2_sqrt = (1.0 - beta2.powf(step)).sqrt();
                    let step_size = lr / bias_correction1;
                    let mut denom = exp_avg_sq.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?;
                    let _ = denom.f_add_scalar_(eps)?;
                    let _ = param.f_addcdiv_(&exp_avg.f_mul_scalar(-step_size)?, &denom)?;
                }
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                } => {
                    let mut g = if weight_decay == 0.0 {
                        grad.shallow_clone()
                    } else {
                        grad.f_add(&param.f_mul_scalar(weight_decay)?)?
                    };
                    if momentum != 0.0 {
                        let key = format!("{name}.momentum_buffer");
                        let fresh = !self.state.iter().any(|(k, _)| *k == key);
                        let mut buf = self.state_for(key, param)?;
                        if fresh {
                            buf.f_copy_(&g)?;
                        } else {
                            let _ = buf.f_mul_scalar_(momentum)?;
                            let _ = buf.f_add_(&g.f_mul_scalar(1.0 - dampening)?)?;
                        }
                        g = if nesterov {
                            g.f_add(&buf.f_mul_scalar(momentum)?)?
                        } else {
                            buf
                        };
                    }
                    let _ = param.f_sub_(&g.f_mul_scalar(lr)?)?;
                }
            }
            let _ = grad.f_zero_()?;
        }
        Ok(())
    }
}
