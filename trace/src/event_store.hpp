// A recorded event, and one thread's recorded events, in blocks of 2 MiB mapped for them and
// offered to the kernel as huge pages. Recording touches new memory with every event it keeps
// (about 1.7 KB per operation of a dist store), and first touches of 4 KiB pages were what
// recording cost per operation (docs/PERFORMANCE.md, *Timeline*); a huge page takes one fault per
// block. Blocks also spare the copies a growing vector makes of what it holds. Thread-safety: none;
// the owning thread_buffer's mutex guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/detail/timeline.hpp"

namespace kvactor::detail::timeline {

struct event {
  char ph = 'X';  // X complete, b/e async pair (one event holds both), i instant
  const char* category = "";
  std::string name;
  std::int64_t ts_ns = 0;
  std::int64_t dur_ns = 0;  // X and b/e: the end is ts_ns + dur_ns
  std::uint64_t id = 0;     // b/e
  args a;
};

class event_store {
 public:
  event_store() = default;
  ~event_store();
  event_store(const event_store&) = delete;
  event_store& operator=(const event_store&) = delete;

  /// Keeps e (throws std::bad_alloc when no block can be mapped).
  void push_back(event&& e);
  std::size_t size() const noexcept { return size_; }
  /// Forgets every event; the blocks stay mapped for the next ones.
  void clear() noexcept;

  /// f(const event&) for each event, in the order they were kept.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < size_; ++i)
      f(blocks_[i / per_block][i % per_block]);
  }

  static constexpr std::size_t block_bytes = std::size_t{2} << 20;
  static constexpr std::size_t per_block = block_bytes / sizeof(event);

 private:
  std::vector<event*> blocks_;
  std::size_t size_ = 0;
};

}  // namespace kvactor::detail::timeline
