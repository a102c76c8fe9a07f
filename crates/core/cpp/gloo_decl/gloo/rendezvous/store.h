// Declaration-only stand-in (see README.md).
// ProcessGroupGloo::GlooStore derives from gloo::rendezvous::Store and overrides these
// four members. GLOO_STORE_HAS_STORE_V2 is deliberately NOT defined, so torch's header
// declares only these overrides. This TU must never construct a GlooStore (its vtable
// would then be emitted here with this partial base): libtorch builds its own.
#pragma once
#include <chrono>
#include <string>
#include <vector>
namespace gloo {
namespace rendezvous {
class Store {
 public:
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
 protected:
  Store() = default;
};
} // namespace rendezvous
} // namespace gloo
