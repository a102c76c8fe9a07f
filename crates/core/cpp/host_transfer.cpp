// Host-to-GPU copies that do not wait for the GPU: see host_transfer.h.
#include "host_transfer.h"

#include <ATen/ATen.h>

#include "guarded_call.h"

extern "C" {

char* ck_host_to_cuda_async(void* t, int device_index, void** out) {
  return ck_c10d::guarded_call([&] {
    TORCH_CHECK(t != nullptr && out != nullptr, "null tensor");
    const auto& host = *static_cast<at::Tensor*>(t);
    TORCH_CHECK(host.device().is_cpu(), "expected a host tensor, got one on ", host.device());
    // pin_memory() copies into a pinned block even when `host` could be released right after: the queued copy
    // reads the pinned block, never `host`.
    auto pinned = host.pin_memory();
    *out = new at::Tensor(pinned.to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index)),
                                    /*non_blocking=*/true));
  });
}

}  // extern "C"
