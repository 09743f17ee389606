// Recycled blocks for objects that one thread makes and another frees, one or more per
// operation: a worker's ops (made by the caller, freed by the I/O thread that completes them)
// and a server's requests. glibc's per-thread caches miss when the freeing thread is not the
// allocating one, and such a malloc cost ~500 instructions (callgrind, 1000-key calls); here
// it is an uncontended lock and a pop. At most max_kept free blocks of a size are kept.
// Sanitizer builds allocate plainly, so that a use after free is still caught.
// Use: std::allocate_shared<T>(recycling_allocator<T>{}, ...).
// Thread-safety: allocate and deallocate may be called from any thread.
#pragma once

#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVACTOR_RECYCLE_BLOCKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define KVACTOR_RECYCLE_BLOCKS 0
#endif
#endif
#ifndef KVACTOR_RECYCLE_BLOCKS
#define KVACTOR_RECYCLE_BLOCKS 1
#endif

namespace kvactor::detail {

/// The free blocks of one size and alignment, process-wide.
template <std::size_t Size, std::size_t Align>
class block_list {
 public:
  static constexpr std::size_t max_kept = 4096;
  static constexpr bool recycles = KVACTOR_RECYCLE_BLOCKS != 0;

  static void* take() {
    if (recycles) {
      auto& l = instance();
      std::lock_guard<std::mutex> g(l.mu_);
      if (!l.free_.empty()) {
        void* p = l.free_.back();
        l.free_.pop_back();
        return p;
      }
    }
    return ::operator new (Size, std::align_val_t{Align});
  }

  static void give(void* p) noexcept {
    if (recycles) {
      auto& l = instance();
      std::lock_guard<std::mutex> g(l.mu_);
      if (l.free_.size() < max_kept) {
        l.free_.push_back(p);  // reserved: does not allocate
        return;
      }
    }
    ::operator delete (p, std::align_val_t{Align});
  }

 private:
  block_list() { free_.reserve(max_kept); }
  // Never destroyed: blocks may still be given back while the process exits.
  static block_list& instance() {
    static auto* l = new block_list;  // NOLINT(cppcoreguidelines-owning-memory)
    return *l;
  }

  std::mutex mu_;
  std::vector<void*> free_;
};

template <class T>
struct recycling_allocator {
  using value_type = T;

  recycling_allocator() noexcept = default;
  template <class U>
  explicit recycling_allocator(const recycling_allocator<U>& /*other*/) noexcept {}

  T* allocate(std::size_t n) {
    if (n != 1)
      return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
    return static_cast<T*>(block_list<sizeof(T), alignof(T)>::take());
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n != 1) return ::operator delete (p, std::align_val_t{alignof(T)});
    block_list<sizeof(T), alignof(T)>::give(p);
  }

  friend bool operator==(const recycling_allocator& /*a*/, const recycling_allocator& /*b*/) {
    return true;
  }
  friend bool operator!=(const recycling_allocator& /*a*/, const recycling_allocator& /*b*/) {
    return false;
  }
};

}  // namespace kvactor::detail
