// Options for kvactor::create. Thread-safety: a value type.
#pragma once

#include <cstddef>
#include <memory>

#include "kvactor/topology.hpp"

namespace kvactor {

struct options {
  /// Shard actors of a local store; 0 means one per hardware thread.
  std::size_t num_shards = 0;
  /// Scheduler threads of the actor system the store creates for itself (ignored when the
  /// store runs on the caller's system); 0 means one per hardware thread.
  std::size_t worker_threads = 0;
  /// Threads of the CPU reducer that sums, copies and updates big arrays; 0 means one per
  /// hardware thread.
  std::size_t reducer_threads = 0;
  /// An operation step that moves at least this many bytes is cut into chunks that may run
  /// on the reducer's threads; smaller ones run inline on the shard. A local store's shard
  /// still runs a step of up to 16 times this on its own thread (or the caller's), which is
  /// sooner than waking the reducer's threads; bigger steps go to the reducer's threads.
  std::size_t parallel_threshold_bytes = std::size_t{1} << 20;
  /// How a push's values of several devices are merged: through this topology's reducer
  /// actors (the "device" store's default is topology::flat()); unset on a "local" store, which
  /// sums them in one pass on its shard and reducer threads.
  std::shared_ptr<const topology> reduction;
};

}  // namespace kvactor
