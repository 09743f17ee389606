// Not installed (memory/internal): the size-classed free lists behind buffer_pool (host
// memory) and behind device/'s pinned_pool and device_pool. A subclass supplies the system
// allocator; buffers return to the core when their last reference drops (the deleter keeps
// the core alive, so a buffer may outlive the pool object that made it).
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kvactor/buffer_pool.hpp"

namespace kvactor::detail {

struct buffer_access {
  /// A pool's buffer that gives its memory back to its core when the last handle drops
  /// (pool_core.cpp).
  struct returning;
};

class pool_core : public std::enable_shared_from_this<pool_core> {
 public:
  explicit pool_core(std::size_t max_cached) noexcept : max_cached_(max_cached) {}
  virtual ~pool_core() = default;
  pool_core(const pool_core&) = delete;
  pool_core& operator=(const pool_core&) = delete;

  /// A buffer of buffer_pool::size_class(bytes) bytes: std::bad_alloc for a request too large
  /// to have a size class, else what system_alloc throws (after freeing the cache and trying
  /// once more, when it throws kvactor::error).
  std::shared_ptr<buffer> acquire(std::size_t bytes);
  /// Frees every cached buffer.
  void trim();
  buffer_pool::stats get_stats() const;

 protected:
  /// Subclasses free their cache in their own destructor (system_free is virtual).
  void free_cache() noexcept;
  virtual void* system_alloc(std::size_t cap) = 0;
  virtual void system_free(void* p, std::size_t cap) noexcept = 0;

 private:
  friend struct buffer_access::returning;  // calls release
  void* allocate(std::size_t cap);
  void release(void* p, std::size_t cap) noexcept;

  const std::size_t max_cached_;
  mutable std::mutex mu_;
  std::map<std::size_t, std::vector<void*>> free_;
  buffer_pool::stats st_;
};

}  // namespace kvactor::detail
