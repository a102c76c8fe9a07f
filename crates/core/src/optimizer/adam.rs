//! Adam and AdamW, as `torch.optim.Adam(W)`'s single-tensor path computes them.

use tch::Tensor;

use super::{add_scaled, check, OptimizerConfig};
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

/// One Adam(W) update of `param` from `grad` at step `step` (1-based).
#[allow(clippy::too_many_arguments)]
pub fn update(
    h: &AdamHyper,
    lr: f64,
    weight_decay: f64,
    step: i64,
    param: &mut Tensor,
    grad: &Tensor,
    mut exp_avg: Tensor,
    mut exp_avg_sq: Tensor,
) -> Result<()> {
    let step = step as f64;
    let g = if weight_decay == 0.0 {
        grad.shallow_clone()
    } else if h.decoupled {
        let _ = param.f_mul_scalar_(1.0 - lr * weight_decay)?;
        grad.shallow_clone()
    } else {
        add_scaled(grad, param, weight_decay)?
    };
    let _ = exp_avg.f_lerp_(&g, 1.0 - h.beta1)?;
    let _ = exp_avg_sq.f_mul_scalar_(h.beta2)?;
    let _ = exp_avg_sq.f_addcmul_(&g, &g.f_mul_scalar(1.0 - h.beta2)?)?;
    let bias_correction1 = 1.0 - h.beta1.powf(step);
    let bias_correction2_sqrt = (1.0 - h.beta2.powf(step)).sqrt();
    let step_size = lr / bias_correction1;
    let mut denom = exp_avg_sq.f_sqrt()?.f_div_scalar(bias_correction2_sqrt)?;
    let _ = denom.f_add_scalar_(h.eps)?;
    let _ = param.f_addcdiv_(&exp_avg.f_mul_scalar(-step_size)?, &denom)?;
    Ok(())
}
