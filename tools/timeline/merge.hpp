// kvactor-timeline's work: the timeline files of one job (one per process, written by
// KVACTOR_TIMELINE: kvactor/detail/timeline.hpp) merged into one Chrome trace on one time
// axis. Each file's clock anchor (its steady clock read together with the system clock)
// turns its timestamps into system time; the merged axis starts at the earliest event of
// the job. Every process keeps its own pid (a pid two files share, as processes on two hosts
// may, is renumbered) and its process and thread names.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvactor/result.hpp"

namespace kvactor::timeline_tool {

struct input_file {
  std::string path;  // for messages
  std::string text;
};

struct merged_source {
  std::string path;
  std::string process;  // its process name
  std::int64_t pid = 0;
  std::int64_t merged_pid = 0;
  long double shift_us = 0;   // added to its timestamps
  long double first_us = -1;  // its first event on the merged axis (-1: none has a time)
  std::size_t events = 0;
};

struct merged {
  std::string text;  // the merged trace (JSON)
  std::vector<merged_source> sources;
  std::size_t events = 0;
};

/// The merged trace, or an error naming the file that is not a kvactor timeline (not JSON,
/// no traceEvents, no clock anchor, an event without a numeric pid or ts) and why.
result<merged> merge_timelines(const std::vector<input_file>& files);

}  // namespace kvactor::timeline_tool
