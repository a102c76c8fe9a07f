// Copies between host and GPU that do not make the host wait for the GPU: see host_transfer.h.
#include "host_transfer.h"

#include <memory>
#include <optional>

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

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

struct ck_host_copy {
  at::Tensor host;
  std::optional<c10::Event> ready;  // absent for a tensor that was on the host already
};

extern "C" {

char* ck_to_host_start(void* t, ck_host_copy** out) {
  return ck_c10d::guarded_call([&] {
    TORCH_CHECK(t != nullptr && out != nullptr, "null tensor");
    const auto& source = *static_cast<at::Tensor*>(t);
    auto copy = std::make_unique<ck_host_copy>();
    if (source.device().is_cpu()) {
      copy->host = source;
    } else {
      copy->host = at::empty(source.sizes(), source.options().device(at::kCPU).pinned_memory(true));
      copy->host.copy_(source, /*non_blocking=*/true);
      // The generic event and stream interfaces (c10) reach CUDA through the hooks libtorch_cuda registers when
      // it is loaded, so this file needs no CUDA headers.
      c10::impl::VirtualGuardImpl guard(source.device().type());
      c10::Event ready(source.device().type());
      ready.record(guard.getStream(source.device()));
      copy->ready.emplace(std::move(ready));
    }
    *out = copy.release();
  });
}

char* ck_to_host_finish(ck_host_copy* copy, void** out) {
  std::unique_ptr<ck_host_copy> owned(copy);
  return ck_c10d::guarded_call([&] {
    TORCH_CHECK(owned != nullptr && out != nullptr, "null copy");
    if (owned->ready) owned->ready->synchronize();
    *out = new at::Tensor(owned->host);
  });
}

void ck_to_host_abandon(ck_host_copy* copy) { delete copy; }

}  // extern "C"
