// The opaque handles of c10d_bridge.h, for the bridge's own .cpp files (not part of the C API).
#pragma once
#include <vector>

#include "guarded_call.h"

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

struct ck_c10d_store {
  c10::intrusive_ptr<c10d::Store> store;  // PrefixStore("default_pg", TCPStore)
};

struct ck_c10d_pg {
  c10::intrusive_ptr<c10d::Backend> backend;
  // Gloo reduces host tensors here; CUDA tensors are staged through the host for it (NCCL takes them as they are).
  bool host_tensors = true;
};

struct ck_c10d_work {
  c10::intrusive_ptr<c10d::Work> work;
  std::vector<at::Tensor> tensors;  // keeps the tensors alive while the work runs
};

namespace ck_c10d {
// Sums `t` over every rank of `backend` in place and waits (no extra bound: the group's timeout applies).
void allreduce_sum(const c10::intrusive_ptr<c10d::Backend>& backend, bool host_tensors, at::Tensor& t);
}  // namespace ck_c10d
