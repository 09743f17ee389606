// Recycled blocks for objects that one thread makes and another frees, one or more per
// operation: a worker's ops (made by the caller, freed by the I/O thread that completes them)
// and a server's requests. glibc's per-thread caches miss when the freeing thread is not the
// allocating one, and such a malloc cost ~500 instructions (callgrind, 1000-key calls); here
// it is a pop from the thread's own few blocks, and a lock per 32 blocks moved to or from the
// shared list (block_list). At most max_kept free blocks of a size are shared, and
// thread_kept per thread.
// Sanitizer builds allocate plainly, so that a use after free is still caught.
// Use: std::allocate_shared<T>(recycling_allocator<T>{}, ...). byte_vector_cache does the same
// for the byte vectors of messages' metadata.
// Thread-safety: allocate and deallocate may be called from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
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

/// What a cache keeps, under its lock.
template <class Item>
struct free_list {
  std::mutex mu;
  std::vector<Item> items;
};

/// The process-wide free list of one cache (Owner tells caches apart), with room for
/// `capacity` items reserved up front so that keeping one never allocates. Never destroyed:
/// blocks and vectors may still be given back while the process exits.
template <class Owner, class Item, std::size_t capacity>
free_list<Item>& shared_free_list() {
  static auto* l = [] {
    auto* f = new free_list<Item>;  // NOLINT(cppcoreguidelines-owning-memory)
    f->items.reserve(capacity);
    return f;
  }();
  return *l;
}

/// The free blocks of one size and alignment: a few per thread, in front of a process-wide
/// list. A block made on one thread and freed on another (most of them: a server's I/O thread
/// makes its requests, a shard frees them) reaches the maker again through the shared list,
/// `batch` blocks per lock; with one lock per block the two threads contended for it on every
/// request (futex waits in perf over 1000-key calls).
template <std::size_t Size, std::size_t Align>
class block_list {
 public:
  static constexpr std::size_t max_kept = 4096;          ///< in the shared list
  static constexpr std::size_t thread_kept = 64;         ///< in each thread's own
  static constexpr std::size_t batch = thread_kept / 2;  ///< moved per lock
  static constexpr bool recycles = KVACTOR_RECYCLE_BLOCKS != 0;

  static void* take() {
    if (recycles) {
      auto& t = mine();
      if (t.n) return t.items[--t.n];
      if (!t.ended) enlist(t);
      auto& l = shared();
      std::lock_guard<std::mutex> g(l.mu);
      // A thread that ends takes one block at a time: it keeps none any more.
      const std::size_t want = t.ended ? 1 : batch;
      while (t.n < want && !l.items.empty()) {
        t.items[t.n++] = l.items.back();
        l.items.pop_back();
      }
      if (t.n) return t.items[--t.n];
    }
    return ::operator new (Size, std::align_val_t{Align});
  }

  static void give(void* p) noexcept {
    if (recycles) {
      auto& t = mine();
      if (!t.ended && t.n < thread_kept) {
        enlist(t);
        t.items[t.n++] = p;
        return;
      }
      // Full (or ending): the older half of the thread's blocks go to the shared list.
      t.items[t.n++] = p;
      spill(t, t.ended ? t.n : batch);
      return;
    }
    ::operator delete (p, std::align_val_t{Align});
  }

 private:
  // Trivially destructible, so a block given back while the thread's other thread_local
  // objects are destroyed still finds it; `ended` then sends every block to the shared list.
  struct thread_blocks {
    std::array<void*, thread_kept + 1> items;
    std::size_t n;
    bool enlisted;
    bool ended;
  };
  struct at_thread_end {
    at_thread_end() = default;
    at_thread_end(const at_thread_end&) = delete;
    at_thread_end& operator=(const at_thread_end&) = delete;
    ~at_thread_end() {
      auto& t = mine();
      t.ended = true;
      spill(t, t.n);
    }
  };

  static thread_blocks& mine() noexcept {
    static thread_local thread_blocks t{};
    return t;
  }
  static free_list<void*>& shared() noexcept {
    return shared_free_list<block_list, void*, max_kept>();
  }
  // The thread's blocks go back to the shared list when it ends.
  static void enlist(thread_blocks& t) noexcept {
    if (t.enlisted) return;
    t.enlisted = true;
    static thread_local at_thread_end end;
    (void)end;
  }
  // Moves the first k of t's blocks to the shared list, frees those it has no room for.
  static void spill(thread_blocks& t, std::size_t k) noexcept {
    std::size_t freed_from = k;
    {
      auto& l = shared();
      std::lock_guard<std::mutex> g(l.mu);
      for (std::size_t i = 0; i < k; ++i) {
        if (l.items.size() == max_kept) {
          freed_from = i;
          break;
        }
        l.items.push_back(t.items[i]);  // reserved: does not allocate
      }
    }
    for (std::size_t i = freed_from; i < k; ++i)
      ::operator delete (t.items[i], std::align_val_t{Align});
    for (std::size_t i = k; i < t.n; ++i)
      t.items[i - k] = t.items[i];
    t.n -= k;
  }
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

/// Byte vectors given back once their bytes are sent (a message's metadata: encoded per
/// message by one thread, released by the one that wrote it), handed out again with their
/// capacity. At most max_kept vectors of at most max_bytes capacity are kept.
class byte_vector_cache {
 public:
  static constexpr std::size_t max_kept = 1024;
  static constexpr std::size_t max_bytes = 4096;

  /// An empty vector, with the capacity of one given back when there is one.
  static std::vector<std::uint8_t> take() {
    std::vector<std::uint8_t> v;
    if (KVACTOR_RECYCLE_BLOCKS != 0) {
      auto& l = list();
      std::lock_guard<std::mutex> g(l.mu);
      if (!l.items.empty()) {
        v.swap(l.items.back());
        l.items.pop_back();
      }
    }
    return v;
  }

  static void give(std::vector<std::uint8_t>&& v) noexcept {
    if (KVACTOR_RECYCLE_BLOCKS == 0 || v.capacity() == 0 || v.capacity() > max_bytes) return;
    auto& l = list();
    std::lock_guard<std::mutex> g(l.mu);
    if (l.items.size() == max_kept) return;
    v.clear();
    l.items.emplace_back();  // reserved: does not allocate
    l.items.back().swap(v);
  }

 private:
  static free_list<std::vector<std::uint8_t>>& list() {
    return shared_free_list<byte_vector_cache, std::vector<std::uint8_t>, max_kept>();
  }
};

}  // namespace kvactor::detail
