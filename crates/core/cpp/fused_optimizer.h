// C API over libtorch's fused optimizer kernels (at::_fused_sgd_, at::_fused_adam_, at::_fused_adamw_) and
// at::_foreach_zero_, for src/optimizer/fused.rs. tch exposes none of them.
//
// Why: an update written out per parameter in tensor ops launches 5–20 kernels per parameter per step (on a GPU
// that is several milliseconds of launches per step for a 60-parameter network, more than the network's own
// work at small batches); the fused kernels update every parameter of a list in one launch on CUDA, and in one
// vectorized, threaded pass over each parameter on the CPU. They are the kernels of torch.optim's `fused=True`.
//
// Conventions: errors as in c10d_bridge.h (NULL, or a message released with ck_c10d_free_error). Tensors are
// `void*` pointing at an `at::Tensor` (tch's C_tensor*); each list holds `n` of them, all on one device with one
// floating dtype, every state tensor laid out like its parameter (same strides: the kernels walk the storage
// flat). A gradient laid out otherwise is copied into its parameter's layout first.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// One SGD step of torch.optim.SGD's arithmetic: momentum (buffers NULL when momentum is 0), dampening, Nesterov,
// L2 weight decay added to the gradient, or with `decoupled` the weights multiplied by 1 - lr × weight_decay
// first. `first_step`: the buffers are new, and take the gradient as they are (PyTorch's first step).
char* ck_fused_sgd(void* const* params, void* const* grads, void* const* momentum_buffers, int64_t n, double lr,
                   double momentum, double dampening, int nesterov, double weight_decay, int decoupled,
                   int first_step);

// One Adam step at `step` (1-based, for the bias corrections): L2 weight decay (Adam), or decoupled (AdamW).
char* ck_fused_adam(void* const* params, void* const* grads, void* const* exp_avgs, void* const* exp_avg_sqs,
                    int64_t n, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    int decoupled);

// Zeroes every tensor of the list.
char* ck_zero_tensors(void* const* tensors, int64_t n);

// Weight averaging's updates (src/averaging.rs): targets[i] += weight × (ends[i] − targets[i]), then, when `copy_back`,
// ends[i] = targets[i] (Lookahead resets the fast weights to the slow ones). The lists may mix dtypes.
char* ck_lerp_tensors(void* const* targets, void* const* ends, int64_t n, double weight, int copy_back);

#ifdef __cplusplus
}
#endif
