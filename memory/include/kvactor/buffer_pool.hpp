// Pooled, 64-byte aligned host buffers. Fresh memory costs ~3 ms/MiB to first touch on these
// machines, so every buffer the store or the transport uses comes from here and goes back on
// release. Large buffers are mapped with transparent huge pages where the kernel allows.
// Thread-safety: buffer_pool is safe to use from any thread; a buffer is owned by whoever
// holds the shared_ptr and returns to its pool when the last reference drops.
#pragma once

#include <cstddef>
#include <memory>

namespace kvactor {

namespace detail {
struct buffer_access;  // kvactor/detail/pool_core.hpp: lets every pool core make buffers
}

class buffer {
 public:
  void* data() const noexcept { return data_; }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  friend class buffer_pool;
  friend struct detail::buffer_access;
  buffer(void* d, std::size_t c) noexcept : data_(d), capacity_(c) {}
  void* data_;
  std::size_t capacity_;
};

class buffer_pool {
 public:
  struct stats {
    std::size_t cached_bytes = 0;  ///< free buffers kept for reuse
    std::size_t live_bytes = 0;    ///< buffers handed out and not yet returned
    std::size_t hits = 0;          ///< acquisitions served from the cache
    std::size_t misses = 0;        ///< acquisitions that allocated
  };

  /// A pool keeps at most max_cached_bytes of free buffers; beyond that, released buffers go
  /// back to the system.
  explicit buffer_pool(std::size_t max_cached_bytes);
  ~buffer_pool();
  buffer_pool(const buffer_pool&) = delete;
  buffer_pool& operator=(const buffer_pool&) = delete;

  /// The process-wide pool (1 GiB cache by default, KVACTOR_POOL_CACHE_MB overrides). It lives
  /// until the process exits, so buffers may outlive any store.
  static buffer_pool& global();

  /// A buffer of at least `bytes` bytes (0 gives a 64-byte buffer). Contents are unspecified.
  /// Throws std::bad_alloc when the system has no memory.
  std::shared_ptr<buffer> acquire(std::size_t bytes);

  /// Frees every cached buffer.
  void trim();
  stats get_stats() const;
  /// The size class acquire() would round `bytes` up to.
  static std::size_t size_class(std::size_t bytes) noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace kvactor
