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

#include "kvactor/detail/pool_core.hpp"

namespace kvactor {

namespace {

constexpr std::size_t min_class = 64;
// From here on buffers are mmapped on 2 MiB boundaries and offered to the kernel for huge
// pages, which removes most of the first-touch cost.
constexpr std::size_t map_threshold = std::size_t{1} << 20;
constexpr std::size_t huge_page = std::size_t{2} << 20;
// Larger requests have no size class: rounding them up would wrap around to a tiny size.
constexpr std::size_t max_request = std::numeric_limits<std::size_t>::max() / huge_page * huge_page;

void* host_alloc(std::size_t cap) {
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

void host_free(void* p, std::size_t cap) noexcept {
  if (cap >= map_threshold)
    ::munmap(p, cap);
  else
    std::free(p);
}

}  // namespace

struct buffer_pool::impl final : detail::pool_core {
  using pool_core::pool_core;
  ~impl() override { free_cache(); }

 protected:
  void* system_alloc(std::size_t cap) override { return host_alloc(cap); }
  void system_free(void* p, std::size_t cap) noexcept override { host_free(p, cap); }
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
  while (p * 2 < bytes)
    p *= 2;
  const std::size_t step = std::max<std::size_t>(p / 4, min_class);
  return (bytes + step - 1) / step * step;
}

std::shared_ptr<buffer> buffer_pool::acquire(std::size_t bytes) {
  return impl_->acquire(bytes);
}

void buffer_pool::trim() {
  impl_->trim();
}

buffer_pool::stats buffer_pool::get_stats() const {
  return impl_->get_stats();
}

}  // namespace kvactor
