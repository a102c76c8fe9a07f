// A caching CPU allocator for libtorch: large blocks freed by tensors are kept and handed to the next tensor of
// (about) the same size instead of going back to the system.
//
// Why: a training step allocates the same large activations every batch (airbench94's network at batch 1024:
// blocks of 100-125 MB; the zoo networks at 224 px alike). glibc serves blocks that large with fresh mappings and
// unmaps them on free, and libtorch's CPU work runs on worker threads whose glibc arenas always fall back to
// mmap for them (mallopt cannot stop it), so every batch faulted in and zeroed those pages again: 17 % of a
// training epoch's perf samples were page faults and page clearing. PyTorch's CUDA allocator caches for the
// same reason; this is that policy for host memory, for blocks of at least `min_block` bytes, keeping at most
// `cap` bytes of free blocks (the oldest go back first).
//
// The deleter's context is the data pointer itself (as libtorch's default CPU allocator does), so raw_allocate
// and raw_deallocate work: the block's size is looked up in a table.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

// Large blocks are rounded up to this, so that sizes that differ a little (the last batch of an epoch, crops)
// still reuse each other's blocks.
constexpr size_t kGranularity = 1 << 20;

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator(size_t min_block, size_t cap) : min_block_(min_block), cap_(cap) {}

  c10::DataPtr allocate(size_t n) override {
    void* data = n >= min_block_ ? take(round_up(n)) : c10::alloc_cpu(n);
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Hands every cached free block back to the system; returns the bytes freed.
  size_t trim() {
    std::vector<void*> evicted;
    size_t freed = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      freed = cached_bytes_;
      while (!age_.empty()) {
        void* oldest = age_.front();
        forget(oldest);
        evicted.push_back(oldest);
      }
    }
    for (void* p : evicted) c10::free_cpu(p);
    return freed;
  }

  void stats(uint64_t* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    out[0] = hits_;
    out[1] = misses_;
    out[2] = cached_bytes_;
    out[3] = live_.size();
  }

 private:
  static size_t round_up(size_t n) { return (n + kGranularity - 1) / kGranularity * kGranularity; }

  // A cached block of exactly `size`, or a new one.
  void* take(size_t size) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_by_size_.find(size);
      if (it != free_by_size_.end()) {
        void* data = it->second;
        forget(data);
        live_[data] = size;
        ++hits_;
        return data;
      }
      ++misses_;
    }
    void* data = c10::alloc_cpu(size);
    std::lock_guard<std::mutex> lock(mutex_);
    live_[data] = size;
    return data;
  }

  void give_back(void* data) {
    if (data == nullptr) return;
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(data);
    if (it == live_.end()) {  // a small block
      lock.unlock();
      c10::free_cpu(data);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    std::vector<void*> evicted;
    if (size > cap_) {
      evicted.push_back(data);
    } else {
      while (cached_bytes_ + size > cap_) {
        void* oldest = age_.front();
        forget(oldest);
        evicted.push_back(oldest);
      }
      auto slot = free_by_size_.emplace(size, data);
      age_.push_back(data);
      cached_[data] = {std::prev(age_.end()), slot};
      cached_bytes_ += size;
    }
    lock.unlock();
    for (void* p : evicted) c10::free_cpu(p);
  }

  // Removes a cached block from the cache's books (the caller holds the lock and owns the block now).
  void forget(void* data) {
    auto c = cached_.find(data);
    cached_bytes_ -= c->second.slot->first;
    free_by_size_.erase(c->second.slot);
    age_.erase(c->second.age);
    cached_.erase(c);
  }

  static void release(void* data);

  const size_t min_block_;
  const size_t cap_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;        // large blocks in use, by address
  std::multimap<size_t, void*> free_by_size_;     // cached large blocks
  std::list<void*> age_;                          // cached blocks, oldest first
  struct Cached {
    std::list<void*>::iterator age;
    std::multimap<size_t, void*>::iterator slot;
  };
  std::unordered_map<void*, Cached> cached_;
  size_t cached_bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

// Set once by ck_cpu_cache_install and never freed: libtorch keeps the pointer (and tensors keep its deleter)
// until the process ends.
CachingCpuAllocator* g_cache = nullptr;

void CachingCpuAllocator::release(void* data) { g_cache->give_back(data); }

}  // namespace

extern "C" {

// Makes the caching allocator libtorch's CPU allocator, for tensors allocated from now on. Call once, before
// the first tensor; returns 0 on success, -1 if it was installed already.
int ck_cpu_cache_install(uint64_t min_block, uint64_t cap) {
  static std::once_flag once;
  int result = -1;
  std::call_once(once, [&] {
    g_cache = new CachingCpuAllocator(min_block, cap);
    // Priority 1 outranks the default allocator's registration (priority 0).
    c10::SetCPUAllocator(g_cache, /*priority=*/1);
    result = 0;
  });
  return result;
}

// Writes hits, misses, bytes of cached free blocks and large blocks in use; returns 1 when installed, else 0
// (and writes zeros).
int ck_cpu_cache_stats(uint64_t* out) {
  if (g_cache == nullptr) {
    for (int i = 0; i < 4; ++i) out[i] = 0;
    return 0;
  }
  g_cache->stats(out);
  return 1;
}

// Frees every cached free block (tensors in use keep theirs); returns the bytes freed, 0 when not installed.
uint64_t ck_cpu_cache_trim() { return g_cache == nullptr ? 0 : g_cache->trim(); }

}  // extern "C"
