//! Gradient clipping by the global norm, as `torch.nn.utils.clip_grad_norm_(params, max_norm)` does it: the 2-norm of
//! all trainable gradients together, and every gradient scaled by `max_norm / (norm + 1e-6)` when that is below 1.
//! Fine-tuning with a fresh head and label noise has the occasional batch whose gradient is many times the usual;
//! clipping bounds the step it takes without changing the others.

use tch::Tensor;

use crate::error::{Error, Result};
use crate::weights::Param;

/// PyTorch's guard against a zero norm.
const EPS: f64 = 1e-6;

/// Checks `max_norm` (a positive, finite number).
pub fn check_max_norm(max_norm: f64) -> Result<f64> {
    if max_norm.is_finite() && max_norm > 0.0 {
        Ok(max_norm)
    } else {
        Err(Error::option("gradClipNorm", "a number > 0", max_norm))
    }
}

/// Scales the trainable parameters' gradients in place so that their global 2-norm is at most `max_norm`. All on
/// the device (the coefficient is a tensor): no copy to the host, so a GPU step stays queued.
pub fn clip_grad_norm(params: &[Param], max_norm: f64) -> Result<()> {
    let grads: Vec<Tensor> = params
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.tensor.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return Ok(());
    }
    tch::no_grad(|| -> Result<()> {
        let norms = grads
            .iter()
            .map(|g| g.f_norm())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
        let coef = total
            .f_add_scalar(EPS)?
            .f_reciprocal()?
            .f_mul_scalar(max_norm)?
            .f_clamp_max(1.0)?;
        for mut g in grads {
            let scale = coef.f_to_kind(g.kind())?;
            let _ = g.f_mul_(&scale)?;
        }
        Ok(())
    })
}
