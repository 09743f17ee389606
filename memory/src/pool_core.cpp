#include "kvactor/detail/pool_core.hpp"

#include <new>

#include "kvactor/detail/recycling_allocator.hpp"
#include "kvactor/error.hpp"

namespace kvactor::detail {

// The buffer, the core it returns to and its shared_ptr's control block are one allocation
// (allocate_shared); a buffer and a deleter holding the core were two for every acquire, and a
// server acquires one per message it receives.
struct buffer_access::returning final : buffer {
  returning(void* p, std::size_t cap, std::shared_ptr<pool_core> o) noexcept
      : buffer(p, cap), owner(std::move(o)) {}
  returning(const returning&) = delete;
  returning& operator=(const returning&) = delete;
  ~returning() { owner->release(data(), capacity()); }
  std::shared_ptr<pool_core> owner;
};

std::shared_ptr<buffer> pool_core::acquire(std::size_t bytes) {
  const std::size_t cap = buffer_pool::size_class(bytes);
  if (cap == static_cast<std::size_t>(-1)) throw std::bad_alloc{};
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = free_.find(cap);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      st_.cached_bytes -= cap;
      ++st_.hits;
    } else {
      ++st_.misses;
    }
    st_.live_bytes += cap;
  }
  if (!p) {
    try {
      p = allocate(cap);
    } catch (...) {
      std::lock_guard<std::mutex> g(mu_);
      st_.live_bytes -= cap;
      throw;
    }
  }
  try {
    // The handle is recycled too: it is made on one thread and often let go on another.
    return std::allocate_shared<buffer_access::returning>(
        recycling_allocator<buffer_access::returning>{}, p, cap, shared_from_this());
  } catch (...) {
    release(p, cap);
    throw;
  }
}

void pool_core::trim() {
  std::map<std::size_t, std::vector<void*>> lists;
  {
    std::lock_guard<std::mutex> g(mu_);
    lists.swap(free_);
    st_.cached_bytes = 0;
  }
  for (auto& [cap, list] : lists)
    for (void* p : list)
      system_free(p, cap);
}

void pool_core::free_cache() noexcept {
  for (auto& [cap, list] : free_)
    for (void* p : list)
      system_free(p, cap);
  free_.clear();
}

buffer_pool::stats pool_core::get_stats() const {
  std::lock_guard<std::mutex> g(mu_);
  return st_;
}

void* pool_core::allocate(std::size_t cap) {
  // A device allocator that runs out of memory throws kvactor::error: the cached buffers are
  // what holds the memory, so free them and try once more.
  try {
    return system_alloc(cap);
  } catch (const error&) {
    if (get_stats().cached_bytes == 0) throw;
  }
  trim();
  return system_alloc(cap);
}

void pool_core::release(void* p, std::size_t cap) noexcept {
  {
    std::lock_guard<std::mutex> g(mu_);
    st_.live_bytes -= cap;
    if (st_.cached_bytes + cap <= max_cached_) {
      try {
        free_[cap].push_back(p);
        st_.cached_bytes += cap;
        return;
      } catch (...) {
        // No memory for bookkeeping: give the buffer back to the system instead.
      }
    }
  }
  system_free(p, cap);
}

}  // namespace kvactor::detail
