// The GPU check's NCCL start-up (scripts/gpu-check.sh): one rank (world size 1) of the c10d bridge's NCCL process
// group on cuda:0. It meets itself at a TCPStore on 127.0.0.1:<port> (the same rendezvous as the Gloo path), creates
// the communicator, all-reduces and broadcasts a CUDA tensor, passes a barrier, and leaves. Prints one JSON line;
// exits 0 when every step worked.
//
// Built only by `gpu-check.sh --prepare`, with c10d_bridge.cpp and -DCK_C10D_NCCL, against a CUDA libtorch 2.11 and
// the nccl.h it was built with (nvidia-nccl-cu13 2.28.9); never part of the CPU build.
#include "c10d_bridge.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <ATen/ATen.h>

namespace {

bool step(const char* what, char* err) {
  if (err == nullptr) return true;
  std::printf("{\"nccl\": \"failed\", \"step\": \"%s\", \"error\": \"", what);
  for (const char* c = err; *c != '\0'; ++c) {
    if (*c == '"' || *c == '\\') std::putchar('\\');
    std::putchar(*c == '\n' ? ' ' : *c);
  }
  std::printf("\"}\n");
  ck_c10d_free_error(err);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 29517;
  const auto started = std::chrono::steady_clock::now();
  ck_c10d_store* store = nullptr;
  ck_c10d_pg* pg = nullptr;
  if (!step("rendezvous", ck_c10d_rendezvous("127.0.0.1", port, 0, 1, 60000, &store))) return 1;
  if (!step("NCCL process group on cuda:0", ck_c10d_pg_nccl_create(store, 0, 1, 60000, 0, &pg))) return 1;
  at::Tensor t = at::full({1 << 20}, 3.0f, at::TensorOptions().device(at::kCUDA, 0));
  ck_c10d_work* work = nullptr;
  if (!step("all-reduce", ck_c10d_allreduce_sum_start(pg, &t, &work))) return 1;
  const bool waited = step("all-reduce wait", ck_c10d_work_wait(work, 60000));
  ck_c10d_work_destroy(work);
  if (!waited) return 1;
  if (!step("broadcast", ck_c10d_broadcast(pg, &t, 0, 60000))) return 1;
  if (!step("barrier", ck_c10d_barrier(pg, 60000))) return 1;
  // Work::wait makes the current stream wait for NCCL's; reading the tensor back synchronizes the host.
  const double sum = t.sum().item<double>();
  ck_c10d_pg_destroy(pg);
  ck_c10d_store_destroy(store);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const bool ok = sum == 3.0 * (1 << 20);
  std::printf("{\"nccl\": \"%s\", \"sum\": %.1f, \"seconds\": %.3f}\n", ok ? "ok" : "wrong result", sum, seconds);
  return ok ? 0 : 1;
}
