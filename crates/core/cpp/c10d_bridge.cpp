// extern "C" bridge over PyTorch's own c10d: TCPStore, PrefixStore, ProcessGroupGloo (and, where the CUDA
// headers are, ProcessGroupNCCL). All code that runs comes from libtorch; this file only calls exported
// functions and (through make_intrusive) the exported constructors.
//
// Why it builds without gloo: torch's wheel ships ProcessGroupGloo.hpp but not gloo's headers. `gloo_decl/`
// holds declaration-only stand-ins that only *name* the gloo types the header mentions; ProcessGroupGloo holds
// every gloo object through shared_ptr/unique_ptr, created inside libtorch. Rules that keep this sound:
// - never construct ProcessGroupGloo::GlooStore or call inline gloo code here (scripts/check-c10d-abi.sh checks
//   that this object defines no gloo vtable or typeinfo, which would interpose libtorch's own);
// - never add a real gloo include folder or link a gloo library (a second, mismatched gloo);
// - the two classes this file allocates must have libtorch's size: the static_asserts below pin them for
//   libtorch 2.11 on x86-64 Linux, and any other libtorch fails to compile until check-c10d-abi.sh has
//   re-derived the sizes from its binary.
// Flags (crates/core/build.rs): -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=1 -DUSE_C10D_GLOO, gloo_decl before
// libtorch's include folders.
#include "c10d_bridge.h"
#include "c10d_handles.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef CK_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#ifndef USE_C10D_GLOO
#error "define USE_C10D_GLOO (torch's ProcessGroupGloo.hpp is empty without it)"
#endif

// This file allocates these two classes (make_intrusive), so their size must be the one libtorch was built
// with. Both were read from libtorch_cpu.so 2.11.0 (x86-64): ProcessGroupGloo::split() does
// `operator new(0x1e8)` before calling the constructor, Options::create_default() `operator new(0xb0)`.
#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11 && defined(__x86_64__) && defined(__linux__)
static_assert(sizeof(c10d::ProcessGroupGloo) == 0x1e8, "ProcessGroupGloo layout differs from libtorch 2.11");
static_assert(sizeof(c10d::ProcessGroupGloo::Options) == 0xb0,
              "ProcessGroupGloo::Options layout differs from libtorch 2.11");
#ifdef CK_C10D_NCCL
// ProcessGroupNCCL::split() in libtorch_cuda.so 2.11.0 does operator new(0x458); the layout depends on the
// NCCL_VERSION_CODE of nccl.h (2.28.9, torch 2.11.0's pin).
static_assert(sizeof(c10d::ProcessGroupNCCL) == 0x458, "ProcessGroupNCCL layout differs from libtorch 2.11");
#endif
#elif !defined(CK_C10D_SIZES_VERIFIED)
#error "unverified libtorch version or platform: run scripts/check-c10d-abi.sh and add its sizes here"
#endif

namespace {

char* dup_message(const char* msg) {
  size_t n = std::strlen(msg);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) std::memcpy(out, msg, n + 1);
  return out;
}

// Runs f, turning any exception into an error string. c10::Error (and its subclasses DistBackendError,
// DistNetworkError) is reported without the C++ backtrace; gloo's own exceptions are std::runtime_errors.
template <typename F>
char* guarded(F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception in c10d");
  }
}

std::chrono::milliseconds ms(int64_t v) { return std::chrono::milliseconds(v); }

at::Tensor& tensor_ref(void* t) {
  TORCH_CHECK(t != nullptr, "null tensor");
  return *static_cast<at::Tensor*>(t);
}

void wait_work(const c10::intrusive_ptr<c10d::Work>& work, int64_t wait_ms) {
  // Work::wait rethrows the collective's error, or a timeout error when the bound passes first (which does
  // not abort the collective: the group's own timeout is what ends a hung one).
  work->wait(wait_ms > 0 ? ms(wait_ms) : ::kNoTimeout);
}

}  // namespace

namespace ck_c10d {

char* guarded_call(const std::function<void()>& f) noexcept { return guarded(f); }

void allreduce_sum(const c10::intrusive_ptr<c10d::Backend>& backend, bool host_tensors, at::Tensor& t) {
  std::vector<at::Tensor> ts{host_tensors ? t.to(at::kCPU).contiguous() : t.contiguous()};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  backend->allreduce(ts, opts)->wait();
  if (!ts[0].is_same(t)) t.copy_(ts[0]);
}

}  // namespace ck_c10d

extern "C" {

void ck_c10d_free_error(char* err) { std::free(err); }

char* ck_c10d_rendezvous(const char* host, int port, int rank, int world_size, int64_t timeout_ms,
                         ck_c10d_store** out) {
  return guarded([&] {
    // Python's `import torch` does this; a host that is not Python must, or TORCH_CPP_LOG_LEVEL is ignored and
    // c10d's connect-retry warnings print C++ stack traces.
    static std::once_flag logging_once;
    std::call_once(logging_once, [] { c10::initLogging(); });
    TORCH_CHECK(out != nullptr && host != nullptr, "null argument");
    TORCH_CHECK(port > 0 && port < 65536, "port out of range: ", port);
    TORCH_CHECK(world_size > 0 && rank >= 0 && rank < world_size, "bad rank ", rank, " of world size ", world_size);
    TORCH_CHECK(timeout_ms > 0, "the rendezvous needs a positive timeout");
    *out = nullptr;
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = static_cast<size_t>(world_size);
    opts.waitWorkers = true;
    opts.timeout = ms(timeout_ms);
    opts.multiTenant = true;  // as torch.distributed's env:// rendezvous
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>("default_pg", tcp);
    // Every rank announces itself and waits for the others: the clients would otherwise go on to Gloo's
    // connection set-up as soon as they reach the server, and wait there under the (short) group timeout.
    store->set("convkit/arrived/" + std::to_string(rank), std::vector<uint8_t>{1});
    std::vector<std::string> keys;
    for (int r = 0; r < world_size; ++r) keys.push_back("convkit/arrived/" + std::to_string(r));
    store->wait(keys, ms(timeout_ms));
    auto s = std::make_unique<ck_c10d_store>();
    s->store = store;
    *out = s.release();
  });
}

void ck_c10d_store_destroy(ck_c10d_store* store) {
  try {
    delete store;
  } catch (...) {
  }
}

char* ck_c10d_pg_gloo_create(ck_c10d_store* store, int rank, int world_size, int64_t timeout_ms,
                             const char* hostname, ck_c10d_pg** out) {
  return guarded([&] {
    TORCH_CHECK(out != nullptr && store != nullptr, "null argument");
    TORCH_CHECK(timeout_ms > 0, "the process group needs a positive timeout");
    *out = nullptr;
    // The key chain of torch's default group: "default_pg" / "0/" / "cpu/".
    auto group_store = c10::make_intrusive<c10d::PrefixStore>("0/", store->store);
    auto backend_store = c10::make_intrusive<c10d::PrefixStore>("cpu/", group_store);
    c10::intrusive_ptr<c10d::ProcessGroupGloo::Options> opts;
    if (hostname != nullptr) {
      opts = c10d::ProcessGroupGloo::Options::create(ms(timeout_ms));
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
      opts->threads = 2;
    } else {
      // What torch's Python constructor uses: GLOO_SOCKET_IFNAME, else the host's name, else loopback.
      opts = c10d::ProcessGroupGloo::Options::create_default(ms(timeout_ms));
    }
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(backend_store, rank, world_size, opts);
    auto h = std::make_unique<ck_c10d_pg>();
    h->backend = std::move(pg);
    *out = h.release();
  });
}

#ifdef CK_C10D_NCCL
char* ck_c10d_pg_nccl_create(ck_c10d_store* store, int rank, int world_size, int64_t timeout_ms, int device_index,
                             ck_c10d_pg** out) {
  return guarded([&] {
    TORCH_CHECK(out != nullptr && store != nullptr, "null argument");
    TORCH_CHECK(timeout_ms > 0, "the process group needs a positive timeout");
    *out = nullptr;
    auto group_store = c10::make_intrusive<c10d::PrefixStore>("0/", store->store);
    auto backend_store = c10::make_intrusive<c10d::PrefixStore>("cuda/", group_store);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = ms(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(backend_store, rank, world_size, opts);
    // Creates the communicator now, so a broken NCCL set-up fails here rather than at the first step.
    pg->eagerConnectSingleDevice(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index)));
    auto h = std::make_unique<ck_c10d_pg>();
    h->backend = std::move(pg);
    h->host_tensors = false;
    *out = h.release();
  });
}
#endif

void ck_c10d_pg_destroy(ck_c10d_pg* pg) {
  try {
    if (pg != nullptr) pg->backend->shutdown();
  } catch (...) {
  }
  try {
    delete pg;
  } catch (...) {
  }
}

char* ck_c10d_allreduce_sum_start(ck_c10d_pg* pg, void* tensor, ck_c10d_work** out) {
  return guarded([&] {
    TORCH_CHECK(pg != nullptr && out != nullptr, "null argument");
    *out = nullptr;
    auto w = std::make_unique<ck_c10d_work>();
    w->tensors.push_back(tensor_ref(tensor));  // shares storage: reduced in place
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    w->work = pg->backend->allreduce(w->tensors, opts);
    *out = w.release();
  });
}

char* ck_c10d_work_wait(ck_c10d_work* work, int64_t wait_ms) {
  return guarded([&] {
    TORCH_CHECK(work != nullptr, "null work");
    wait_work(work->work, wait_ms);
  });
}

void ck_c10d_work_destroy(ck_c10d_work* work) {
  try {
    delete work;
  } catch (...) {
  }
}

char* ck_c10d_broadcast(ck_c10d_pg* pg, void* tensor, int root, int64_t wait_ms) {
  return guarded([&] {
    TORCH_CHECK(pg != nullptr, "null process group");
    std::vector<at::Tensor> ts{tensor_ref(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.rootTensor = 0;
    wait_work(pg->backend->broadcast(ts, opts), wait_ms);
  });
}

char* ck_c10d_barrier(ck_c10d_pg* pg, int64_t wait_ms) {
  return guarded([&] {
    TORCH_CHECK(pg != nullptr, "null process group");
    c10d::BarrierOptions opts;
    if (wait_ms > 0) opts.timeout = ms(wait_ms);
    wait_work(pg->backend->barrier(opts), wait_ms);
  });
}

}  // extern "C"
