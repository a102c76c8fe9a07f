// Synchronized batch normalization: a training-mode batch norm whose statistics are those of every rank's batch
// together, as torch.nn.SyncBatchNorm computes them. The statistics need one collective in the forward pass and
// the gradient another in the backward pass, while autograd is running, which is why this is a libtorch autograd
// Function here and not Rust code: tch can neither define a backward nor hook into one.
//
// The math, per channel, over the N images × H × W positions of all ranks together (count M):
//   forward   mean, var (biased) of all ranks; y = (x - mean) / sqrt(var + eps) * weight + bias;
//             running_mean/var move towards mean and var * M / (M - 1), with the layer's momentum.
//   backward  with this rank's dy: grad_weight, grad_bias are this rank's sums (the gradient averaging after
//             backward combines them, as DDP does torch's); grad_input needs the means of dy and dy·x̂ over all
//             ranks: dx = (dy - mean(dy) - x̂ · mean(dy·x̂)) · invstd · weight, with x̂ = (x - mean) · invstd.
// The elementwise work is libtorch's own batch norm kernels (inference-mode forward, training-mode backward);
// statistics are float32 whatever the activations' type (bf16 under autocast).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "c10d_bridge.h"
#include "c10d_handles.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// [C] -> [1, C, 1, ...] to broadcast against x.
at::Tensor per_channel(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = v.size(0);
  return v.view(shape);
}

// Values per channel in x (N × H × W for an image batch): the count each rank's statistics are over.
double positions_per_channel(const at::Tensor& x) {
  return static_cast<double>(x.numel() / std::max<int64_t>(x.size(1), 1));
}

struct Stats {
  at::Tensor mean, var;  // float32 [C], on x's device
  double count;          // M: positions per channel over all ranks
};

// The statistics of every rank's batch together, in one collective: each rank writes its count, mean and sum of
// squared deviations into its own row of a [world, 1 + 2C] float64 table, the all-reduce (a sum over a table
// that is zero elsewhere) hands every rank all rows, and Chan's pairwise formula combines them. Combining
// per-rank deviations, not raw sums of squares, keeps the variance exact where the mean is large.
Stats global_stats(const c10::intrusive_ptr<c10d::Backend>& backend, bool host_tensors, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  const int64_t channels = x.size(1);
  const double local_count = positions_per_channel(x);
  // libtorch's batch norm statistics kernel (two passes, channels_last aware). Float32 running statistics to
  // update (stand-ins, dropped) make it compute float32 statistics of bf16 activations too.
  auto scratch_options = x.options().dtype(at::kFloat);
  auto [local_mean, local_var] = at::batch_norm_update_stats(x, at::zeros({channels}, scratch_options),
                                                             at::ones({channels}, scratch_options), 0.0);
  auto table = at::zeros({backend->getSize(), 1 + 2 * channels}, x.options().dtype(at::kDouble));
  auto row = table[backend->getRank()];
  row[0].fill_(local_count);
  row.narrow(0, 1, channels).copy_(local_mean);
  row.narrow(0, 1 + channels, channels).copy_(local_var.to(at::kDouble) * local_count);
  ck_c10d::allreduce_sum(backend, host_tensors, table);
  auto counts = table.select(1, 0).unsqueeze(1);            // [W, 1]
  auto means = table.narrow(1, 1, channels);                 // [W, C]
  auto squares = table.narrow(1, 1 + channels, channels);    // [W, C]
  const double total = counts.sum().item<double>();
  TORCH_CHECK(total > 1, "synchronized batch norm needs more than one value per channel over all ranks, got ",
              total);
  auto mean = (counts * means).sum(0) / total;
  auto var = (squares + counts * (means - mean).square()).sum(0) / total;
  return {mean.to(at::kFloat), var.to(at::kFloat), total};
}

struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  // Normalizes x with the given (global) statistics: libtorch's own inference-mode kernel does exactly that.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& mean, const at::Tensor& var, double eps, double count,
                            c10::intrusive_ptr<c10d::Backend> backend, bool host_tensors) {
    auto invstd = (var + eps).rsqrt();
    ctx->save_for_backward({x, weight, mean, invstd});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["count"] = count;
    ctx->saved_data["host_tensors"] = host_tensors;
    // Backend is a torch CustomClassHolder: the capsule keeps the group alive for as long as the graph is.
    ctx->saved_data["backend"] = at::IValue::make_capsule(std::move(backend));
    return at::batch_norm(x, weight, bias, mean, var, /*training=*/false, 0.0, eps, /*cudnn_enabled=*/true);
  }

  // libtorch's training-mode backward, given the global statistics, computes grad_input with this rank's means of
  // dy and dy·x̂ (x̂ = (x - mean) · invstd) and returns their sums as grad_bias and grad_weight. The all-reduce
  // of those sums gives the global means, and grad_input is corrected by
  //   weight · invstd · ((local - global mean of dy) + x̂ · (local - global mean of dy·x̂)),
  // which is A + B · (x - mean) per channel.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    const double eps = ctx->saved_data["eps"].toDouble();
    const double count = ctx->saved_data["count"].toDouble();
    const bool host_tensors = ctx->saved_data["host_tensors"].toBool();
    auto backend = c10::static_intrusive_pointer_cast<c10d::Backend>(ctx->saved_data["backend"].toCapsule());
    const int64_t channels = x.size(1);
    const double local_count = positions_per_channel(x);
    auto [grad_input, sum_dy_xhat, sum_dy] = at::native_batch_norm_backward(
        grads[0], x, weight, /*running_mean=*/{}, /*running_var=*/{}, mean, invstd, /*train=*/true, eps,
        {ctx->needs_input_grad(0), true, true});
    if (ctx->needs_input_grad(0)) {
      auto sums = at::cat({sum_dy, sum_dy_xhat}).to(at::kFloat);
      auto local_means = sums / local_count;
      ck_c10d::allreduce_sum(backend, host_tensors, sums);
      auto delta = local_means - sums / count;
      auto delta_dy = delta.narrow(0, 0, channels), delta_dy_xhat = delta.narrow(0, channels, channels);
      auto scale = weight.to(at::kFloat) * invstd;
      auto a = scale * delta_dy;
      auto b = scale * delta_dy_xhat * invstd;
      // As A + B (x - mean), not (A - B mean) + B x: where |mean| is large next to the spread, the latter would
      // cancel two large terms.
      const auto type = grad_input.scalar_type();
      grad_input.addcmul_(x - per_channel(mean.to(x.scalar_type()), x), per_channel(b.to(type), x))
          .add_(per_channel(a.to(type), x));
    }
    return {grad_input,
            ctx->needs_input_grad(1) ? sum_dy_xhat : at::Tensor(),
            ctx->needs_input_grad(2) ? sum_dy : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

const at::Tensor& tensor_at(void* t, const char* what) {
  TORCH_CHECK(t != nullptr, "null ", what);
  return *static_cast<at::Tensor*>(t);
}

}  // namespace

extern "C" char* ck_c10d_sync_batch_norm(ck_c10d_pg* pg, void* input, void* weight, void* bias, void* running_mean,
                                         void* running_var, double momentum, double eps, void** out) {
  return ck_c10d::guarded_call([&] {
    TORCH_CHECK(pg != nullptr && out != nullptr, "null argument");
    *out = nullptr;
    const at::Tensor& x = tensor_at(input, "input");
    TORCH_CHECK(x.dim() >= 2, "synchronized batch norm expects an [N, C, ...] input, got ", x.sizes());
    // Without affine parameters, a scale of ones and a shift of zeros that need no gradient stand in for them:
    // libtorch's custom Functions take no undefined tensor inputs.
    const auto param_options = x.options().dtype(at::kFloat);
    at::Tensor w = weight != nullptr ? tensor_at(weight, "weight") : at::ones({x.size(1)}, param_options);
    at::Tensor b = bias != nullptr ? tensor_at(bias, "bias") : at::zeros({x.size(1)}, param_options);
    at::Tensor rm = tensor_at(running_mean, "running_mean");
    at::Tensor rv = tensor_at(running_var, "running_var");
    Stats stats = global_stats(pg->backend, pg->host_tensors, x);
    {
      at::NoGradGuard no_grad;
      rm.mul_(1 - momentum).add_(stats.mean.to(rm.scalar_type()), momentum);
      rv.mul_(1 - momentum).add_((stats.var * (stats.count / (stats.count - 1))).to(rv.scalar_type()), momentum);
    }
    auto y = SyncBatchNormFn::apply(x, w, b, stats.mean, stats.var, eps, stats.count, pg->backend, pg->host_tensors);
    *out = new at::Tensor(std::move(y));
  });
}
