// Declaration-only stand-in (see README.md).
// ProcessGroupGloo::setTimeout (inline in torch's header) calls Context::setTimeout,
// a non-virtual member defined in libtorch_cpu.so, so the class must be complete and
// declare it. No member data is declared on purpose: this TU never creates, copies,
// destroys or reads a gloo::Context (shared_ptr control blocks come from libtorch).
#pragma once
#include <chrono>
#include <gloo/transport/device.h>
namespace gloo {
class Context {
 public:
  Context() = delete;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  void setTimeout(std::chrono::milliseconds timeout);
};
} // namespace gloo
