//! libtorch's fused optimizer kernels (torch.optim's `fused=True`), through `cpp/fused_optimizer.h`: each call
//! updates a whole list of parameters, one kernel launch on CUDA and one vectorized pass per tensor on the CPU,
//! where the same update written in tensor ops costs 5–20 launches per parameter.

use std::ffi::{c_char, c_int, c_void};

use tch::Tensor;

use crate::error::{Error, Result};
use crate::ffi::check_torch;

extern "C" {
    fn ck_fused_sgd(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        momentum_buffers: *const *mut c_void,
        n: i64,
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: c_int,
        weight_decay: f64,
        decoupled: c_int,
        first_step: c_int,
    ) -> *mut c_char;
    fn ck_fused_adam(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        n: i64,
        step: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: c_int,
    ) -> *mut c_char;
    fn ck_zero_tensors(tensors: *const *mut c_void, n: i64) -> *mut c_char;
    fn ck_lerp_tensors(
        targets: *const *mut c_void,
        ends: *const *mut c_void,
        n: i64,
        weight: f64,
        copy_back: c_int,
    ) -> *mut c_char;
}

/// The tensors of one fused call: parameters, their gradients and their state lists (Adam's two moments, or
/// SGD's momentum buffers), index for index, all on one device with one dtype and each laid out like its
/// parameter.
#[derive(Debug, Default)]
pub struct TensorLists {
    pub params: Vec<Tensor>,
    pub grads: Vec<Tensor>,
    pub state: Vec<Vec<Tensor>>,
}

fn pointers<T: std::borrow::Borrow<Tensor>>(tensors: &[T]) -> Vec<*mut c_void> {
    tensors.iter().map(|t| t.borrow().as_ptr() as *mut c_void).collect()
}

/// One SGD step (see `ck_fused_sgd`); `lists.state` is `[momentum buffers]`, or empty without momentum.
#[allow(clippy::too_many_arguments)]
pub fn sgd(
    lists: &TensorLists,
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    decoupled: bool,
    first_step: bool,
) -> Result<()> {
    let (params, grads) = (pointers(&lists.params), pointers(&lists.grads));
    let buffers = lists.state.first().map(|b| pointers(b)).unwrap_or_default();
    if momentum != 0.0 && buffers.len() != params.len() {
        return Err(Error::torch("fused SGD: momentum needs one buffer per parameter"));
    }
    // SAFETY: every pointer is a live at::Tensor owned by `lists` for the whole call; the C++ side copies the
    // handles it keeps and catches every exception.
    check_torch("fused SGD step", unsafe {
        ck_fused_sgd(
            params.as_ptr(),
            grads.as_ptr(),
            if buffers.is_empty() {
                std::ptr::null()
            } else {
                buffers.as_ptr()
            },
            params.len() as i64,
            lr,
            momentum,
            dampening,
            nesterov as c_int,
            weight_decay,
            decoupled as c_int,
            first_step as c_int,
        )
    })
}

/// One Adam (or, `decoupled`, AdamW) step at `step` (1-based); `lists.state` is `[exp_avg, exp_avg_sq]`.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    lists: &TensorLists,
    step: i64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
) -> Result<()> {
    let n = lists.params.len();
    let [exp_avgs, exp_avg_sqs] = match lists.state.as_slice() {
        [m, v] if m.len() == n && v.len() == n => [pointers(m), pointers(v)],
        _ => return Err(Error::torch("fused Adam: two moments per parameter expected")),
    };
    let (params, grads) = (pointers(&lists.params), pointers(&lists.grads));
    // SAFETY: as in `sgd`.
    check_torch("fused Adam step", unsafe {
        ck_fused_adam(
            params.as_ptr(),
            grads.as_ptr(),
            exp_avgs.as_ptr(),
            exp_avg_sqs.as_ptr(),
            n as i64,
            step,
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled as c_int,
        )
    })
}

/// Zeroes the tensors in place (one launch per device on CUDA).
pub fn zero(tensors: &[Tensor]) -> Result<()> {
    let ptrs = pointers(tensors);
    // SAFETY: as in `sgd`.
    check_torch("zeroing the gradients", unsafe {
        ck_zero_tensors(ptrs.as_ptr(), ptrs.len() as i64)
    })
}

/// `targets[i] += weight × (ends[i] − targets[i])` for every i, then with `copy_back` `ends[i] = targets[i]`: weight
/// averaging's update, two launches per device on CUDA whatever the number of tensors.
pub fn lerp(targets: &[Tensor], ends: &[&mut Tensor], weight: f64, copy_back: bool) -> Result<()> {
    if targets.len() != ends.len() {
        return Err(Error::torch(format!(
            "averaging: {} averaged tensors for {} weights",
            targets.len(),
            ends.len()
        )));
    }
    let (targets, ends) = (pointers(targets), pointers(ends));
    // SAFETY: as in `sgd`.
    check_torch("averaging the weights", unsafe {
        ck_lerp_tensors(
            targets.as_ptr(),
            ends.as_ptr(),
            targets.len() as i64,
            weight,
            copy_back as c_int,
        )
    })
}
