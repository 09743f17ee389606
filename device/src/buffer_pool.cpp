#include "kvactor/buffer_pool.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace kvactor {

namespace {

constexpr std::size_t min_class = 64;
// From here on buffers are mmapped on 2 MiB boundaries and offered to the kernel for huge
// pages, which removes most of the first-touch cost.
constexpr std::size_t map_threshold = std::size_t{1} << 20;
constexpr std::size_t huge_page = std::size_t{2} << 20;
// Larger requests have no size class: rounding them up would wrap around to a tiny size.
constexpr std::size_t max_request = std::numeric_limits<std::size_t>::max() / huge_page * huge_page;

void* system_alloc(std::size_t cap) {
  if (cap >= map_threshold) {
    void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc{};
#ifdef MADV_HUGEPAGE
    ::madvise(p, cap, MADV_HUGEPAGE);
#endif
    return p;
  }
  void* p = std::aligned_alloc(64, cap);
  if (!p) throw std::bad_alloc{};
  return p;
}

void system_free(void* p, std::size_t cap) noexcept {
  if (cap >= map_threshold)
    ::munmap(p, cap);
  else
    std::free(p);
}

}  // namespace

struct buffer_pool::impl {
  explicit impl(std::size_t max_cached) : max_cached_bytes(max_cached) {}
  ~impl() {
    for (auto& [cap, list] : free_lists)
      for (void* p : list) system_free(p, cap);
  }

  void release(void* p, std::size_t cap) noexcept {
    {
      std::lock_guard<std::mutex> g(mu);
      st.live_bytes -= cap;
      if (st.cached_bytes + cap <= max_cached_bytes) {
        try {
          free_lists[cap].push_back(p);
          st.cached_bytes += cap;
          return;
        } catch (...) {
          // No memory for bookkeeping: give the buffer back to the system instead.
        }
      }
    }
    system_free(p, cap);
  }

  const std::size_t max_cached_bytes;
  mutable std::mutex mu;
  std::map<std::size_t, std::vector<void*>> free_lists;
  stats st;
};

buffer_pool::buffer_pool(std::size_t max_cached_bytes)
    : impl_(std::make_shared<impl>(max_cached_bytes)) {}

buffer_pool::~buffer_pool() = default;

buffer_pool& buffer_pool::global() {
  // Never destroyed: buffers held by static objects may be released during exit.
  static buffer_pool* pool = [] {
    std::size_t mb = 1024;
    if (const char* env = std::getenv("KVACTOR_POOL_CACHE_MB")) {
      try {
        mb = std::stoull(env);
      } catch (...) {
        // Keep the default for a malformed value.
      }
    }
    return new buffer_pool(mb << 20);
  }();
  return *pool;
}

std::size_t buffer_pool::size_class(std::size_t bytes) noexcept {
  if (bytes <= min_class) return min_class;
  if (bytes > max_request) return std::numeric_limits<std::size_t>::max();
  // Quarter steps between powers of two (at most 25% slack), and always a multiple of the
  // 64-byte alignment, which aligned_alloc requires of the size. From 8 MiB up the steps are
  // whole multiples of the 2 MiB huge page.
  std::size_t p = min_class;
  while (p * 2 < bytes) p *= 2;
  const std::size_t step = std::max<std::size_t>(p / 4, min_class);
  return (bytes + step - 1) / step * step;
}

std::shared_ptr<buffer> buffer_pool::acquire(std::size_t bytes) {
  if (bytes > max_request) throw std::bad_alloc{};
  const std::size_t cap = size_class(bytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    auto it = impl_->free_lists.find(cap);
    if (it != impl_->free_lists.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      impl_->st.cached_bytes -= cap;
      ++impl_->st.hits;
    } else {
      ++impl_->st.misses;
    }
    impl_->st.live_bytes += cap;
  }
  if (!p) {
    try {
      p = system_alloc(cap);
    } catch (...) {
      std::lock_guard<std::mutex> g(impl_->mu);
      impl_->st.live_bytes -= cap;
      throw;
    }
  }
  // The deleter keeps the pool alive, so a buffer may outlive the pool object itself.
  std::shared_ptr<impl> owner = impl_;
  buffer* b = nullptr;
  try {
    b = new buffer(p, cap);
  } catch (...) {
    owner->release(p, cap);
    throw;
  }
  return std::shared_ptr<buffer>(b, [owner](buffer* b) {
    owner->release(b->data(), b->capacity());
    delete b;
  });
}

void buffer_pool::trim() {
  std::map<std::size_t, std::vector<void*>> lists;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    lists.swap(impl_->free_lists);
    impl_->st.cached_bytes = 0;
  }
  for (auto& [cap, list] : lists)
    for (void* p : list) system_free(p, cap);
}

buffer_pool::stats buffer_pool::get_stats() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->st;
}

}  // namespace kvactor
