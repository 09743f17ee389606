// The timeline's process-wide state, shared by the recorder (timeline.cpp) and the file
// writer (timeline_file.cpp).
// Thread-safety: `mu` guards the registry's members; each thread_buffer's `mu` guards that
// buffer (taken by its own thread to record and by the writer to read).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "event_store.hpp"
#include "kvactor/detail/timeline.hpp"

namespace kvactor::detail::timeline {

struct thread_buffer {
  std::mutex mu;
  event_store events;
  std::string name;
  std::uint64_t dropped = 0;
  int tid = 0;
};

struct registry {
  std::mutex mu;
  std::vector<std::shared_ptr<thread_buffer>> threads;
  std::string base;  // empty: never started
  std::string process_name;
  bool process_name_set = false;  // by set_process_name, not only a default
  bool exit_hook = false;
  int next_tid = 1;
  std::int64_t anchor_steady_ns = 0;
  std::int64_t anchor_system_ns = 0;
};

/// The registry (made on first use, never destroyed: threads may record during exit).
registry& the_registry();

}  // namespace kvactor::detail::timeline
