#include "event_store.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <new>

// LeakSanitizer does not look into mapped memory, so the names that events there hold would
// be reported as leaked at exit: under AddressSanitizer blocks come from the heap.
#if defined(__SANITIZE_ADDRESS__)
#define KVACTOR_TRACE_HEAP_BLOCKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define KVACTOR_TRACE_HEAP_BLOCKS 1
#endif
#endif
#ifndef KVACTOR_TRACE_HEAP_BLOCKS
#define KVACTOR_TRACE_HEAP_BLOCKS 0
#endif

namespace kvactor::detail::timeline {

namespace {

// A block on a 2 MiB boundary (a huge page can back only an aligned range): twice the size
// mapped, the rest given back.
event* map_block() {
  constexpr std::size_t bytes = event_store::block_bytes;
  if constexpr (KVACTOR_TRACE_HEAP_BLOCKS != 0) return static_cast<event*>(::operator new(bytes));
  void* p = ::mmap(nullptr, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc{};
  char* const mapped = static_cast<char*>(p);
  const std::size_t skip = (bytes - reinterpret_cast<std::uintptr_t>(p) % bytes) % bytes;
  char* const block = mapped + skip;
  if (skip > 0) ::munmap(mapped, skip);
  ::munmap(block + bytes, bytes - skip);
#ifdef MADV_HUGEPAGE
  ::madvise(block, bytes, MADV_HUGEPAGE);
#endif
  return static_cast<event*>(static_cast<void*>(block));
}

}  // namespace

event_store::~event_store() {
  clear();
  for (event* b : blocks_) {
    if constexpr (KVACTOR_TRACE_HEAP_BLOCKS != 0)
      ::operator delete(b);
    else
      ::munmap(b, block_bytes);
  }
}

void event_store::push_back(event&& e) {
  if (size_ == blocks_.size() * per_block) {
    blocks_.reserve(blocks_.size() + 1);  // before the map: nothing to unmap if it throws
    blocks_.push_back(map_block());
  }
  new (&blocks_[size_ / per_block][size_ % per_block]) event(std::move(e));
  ++size_;
}

void event_store::clear() noexcept {
  for (std::size_t i = 0; i < size_; ++i)
    blocks_[i / per_block][i % per_block].~event();
  size_ = 0;
}

}  // namespace kvactor::detail::timeline
