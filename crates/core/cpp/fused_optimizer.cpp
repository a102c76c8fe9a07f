// libtorch's fused optimizer kernels behind a C API: see fused_optimizer.h.
#include "fused_optimizer.h"

#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "guarded_call.h"

namespace {

std::vector<at::Tensor> tensor_list(void* const* tensors, int64_t n) {
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    TORCH_CHECK(tensors[i] != nullptr, "null tensor at ", i);
    out.push_back(*static_cast<at::Tensor*>(tensors[i]));
  }
  return out;
}

// Whether a and b walk their storage in step: same sizes, same strides wherever a size exceeds 1 (a stride over a
// dimension of size 1 is never followed, and autograd's layout rule leaves it free).
bool same_layout(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); d++) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

// The kernels index parameter, gradient and state storage in step; autograd lays gradients out like their
// parameters, so this copies only in the odd case where one is not.
std::vector<at::Tensor> grads_like(void* const* grads, const std::vector<at::Tensor>& params) {
  auto out = tensor_list(grads, static_cast<int64_t>(params.size()));
  for (size_t i = 0; i < out.size(); i++) {
    if (!same_layout(out[i], params[i])) out[i] = at::empty_like(params[i]).copy_(out[i]);
  }
  return out;
}

void check_state(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& state, const char* what) {
  for (size_t i = 0; i < params.size(); i++) {
    TORCH_CHECK(same_layout(state[i], params[i]) && state[i].scalar_type() == params[i].scalar_type() &&
                    state[i].device() == params[i].device(),
                what, " ", i, " is not laid out like its parameter");
  }
}

}  // namespace

extern "C" {

char* ck_fused_sgd(void* const* params, void* const* grads, void* const* momentum_buffers, int64_t n, double lr,
                   double momentum, double dampening, int nesterov, double weight_decay, int decoupled,
                   int first_step) {
  return ck_c10d::guarded_call([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto ps = tensor_list(params, n);
    auto gs = grads_like(grads, ps);
    std::vector<at::Tensor> bufs;
    if (momentum != 0.0) {
      bufs = tensor_list(momentum_buffers, n);
      check_state(ps, bufs, "momentum buffer");
    }
    if (decoupled && weight_decay != 0.0) at::_foreach_mul_(ps, 1.0 - lr * weight_decay);
    at::_fused_sgd_(ps, gs, bufs, decoupled ? 0.0 : weight_decay, momentum, lr, dampening, nesterov != 0,
                    /*maximize=*/false, first_step != 0);
  });
}

char* ck_fused_adam(void* const* params, void* const* grads, void* const* exp_avgs, void* const* exp_avg_sqs,
                    int64_t n, int64_t step, double lr, double beta1, double beta2, double eps, double weight_decay,
                    int decoupled) {
  return ck_c10d::guarded_call([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto ps = tensor_list(params, n);
    auto gs = grads_like(grads, ps);
    auto ms = tensor_list(exp_avgs, n);
    auto vs = tensor_list(exp_avg_sqs, n);
    check_state(ps, ms, "exp_avg");
    check_state(ps, vs, "exp_avg_sq");
    // The kernels read the step from a float32 scalar per parameter, on the parameters' device (one fill, no
    // copy from the host); every parameter here is at the same step.
    auto step_tensor = at::full({}, static_cast<double>(step), ps[0].options().dtype(at::kFloat));
    std::vector<at::Tensor> steps(static_cast<size_t>(n), step_tensor);
    if (decoupled) {
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                        /*maximize=*/false);
    } else {
      at::_fused_adam_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                       /*maximize=*/false);
    }
  });
}

char* ck_zero_tensors(void* const* tensors, int64_t n) {
  return ck_c10d::guarded_call([&] {
    if (n == 0) return;
    at::_foreach_zero_(tensor_list(tensors, n));
  });
}

char* ck_lerp_tensors(void* const* targets, void* const* ends, int64_t n, double weight, int copy_back) {
  return ck_c10d::guarded_call([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto ts = tensor_list(targets, n);
    auto es = tensor_list(ends, n);
    at::_foreach_lerp_(ts, es, weight);
    if (copy_back) at::_foreach_copy_(es, ts);
  });
}

}  // extern "C"
