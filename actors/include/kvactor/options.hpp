// Options for kvactor::create. Thread-safety: a value type.
#pragma once

#include <chrono>
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

  /// dist stores (fusion of small keys, what Horovod and BytePS call tensor fusion): the
  /// operations of one call on keys of at most this many bytes (whole on one server) travel
  /// to each server as one message and are applied there as one batch, each key in its order
  /// and with its own result. 0: every key travels alone. KVACTOR_FUSION_KEY_BYTES overrides.
  std::size_t fusion_key_bytes = std::size_t{64} << 10;
  /// A fused message moves at most about this many bytes (sent and answered); a call's keys
  /// beyond it travel in further messages, so the server applies one while the next is
  /// formed (1 MiB moved 1000 keys of 4 KiB in 1.4-1.7x less time than 4 MiB:
  /// docs/PERFORMANCE.md, fusion of small keys). KVACTOR_FUSION_BYTES overrides.
  std::size_t fusion_bytes = std::size_t{1} << 20;
  /// How long a fused message waits for the operations of later calls to join it; 0: only
  /// the keys of one call travel together. KVACTOR_FUSION_WINDOW_US overrides.
  std::chrono::microseconds fusion_window{0};
};

}  // namespace kvactor
