// Counts the ATen operators the calling thread dispatches at the top level, not those an operator calls inside
// itself (the same count bench/airbench_step_ops.py takes from torch.profiler's events). On a GPU each is about one
// kernel launch (a fused or multi-tensor operator is one for many tensors), so this measures a step's launch cost
// on any machine: the tests pin the optimizer's step to a few operators whatever the number of parameters. A
// thread-local RecordFunction callback, present only while counting.
#include <cstdint>
#include <cstring>

#include <ATen/record_function.h>

#include "guarded_call.h"

namespace {

thread_local int64_t depth = 0;
thread_local int64_t counted = 0;
thread_local at::CallbackHandle handle = at::INVALID_CALLBACK_HANDLE;

// Only ATen operators count, and nest: other recorded ranges (autograd's `evaluate_function: ConvolutionBackward0`
// around the operators of each backward node) are transparent, as in torch.profiler's tree.
bool is_aten(const at::RecordFunction& fn) { return std::strncmp(fn.name(), "aten::", 6) == 0; }

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  if (is_aten(fn) && depth++ == 0) ++counted;
  return nullptr;
}

void on_exit(const at::RecordFunction& fn, at::ObserverContext*) {
  if (is_aten(fn) && depth > 0) --depth;
}

}  // namespace

extern "C" {

// Starts counting on this thread from zero (an error if already counting).
char* ck_op_count_begin() {
  return ck_c10d::guarded_call([] {
    TORCH_CHECK(handle == at::INVALID_CALLBACK_HANDLE, "already counting operators on this thread");
    depth = 0;
    counted = 0;
    handle = at::addThreadLocalCallback(
        at::RecordFunctionCallback(on_enter, on_exit).scopes({at::RecordScope::FUNCTION}).needsInputs(false));
  });
}

// Stops counting on this thread; *out receives the count.
char* ck_op_count_end(int64_t* out) {
  return ck_c10d::guarded_call([&] {
    TORCH_CHECK(handle != at::INVALID_CALLBACK_HANDLE, "not counting operators on this thread");
    at::removeCallback(handle);
    handle = at::INVALID_CALLBACK_HANDLE;
    *out = counted;
  });
}

}  // extern "C"
