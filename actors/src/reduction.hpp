// Runs multi-device merges through a reduction topology: reducer nodes (flat, tree, custom)
// or ring members are actors; one merge is a job that flows through them. CAF stays in the
// .cpp.
// Thread-safety: reduce() may be called from any thread; done runs on a reducer's thread.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "kvactor/tensor.hpp"
#include "kvactor/topology.hpp"

namespace caf {
class actor_system;
}

namespace kvactor {
class thread_pool;
}

namespace kvactor::detail {

class reduction_engine {
 public:
  reduction_engine(caf::actor_system& sys, topology t);
  ~reduction_engine();
  reduction_engine(const reduction_engine&) = delete;
  reduction_engine& operator=(const reduction_engine&) = delete;

  /// target = the sum of values (one per device slot), in the topology's order; then done.
  /// An invalid topology for this many values completes done with invalid_argument.
  /// Values on CUDA devices are summed on the devices (flat, tree and custom graphs): a node
  /// sums on its first input's device, the root on the key's merge device — the least loaded
  /// (by bytes placed) among the push's devices when the key is first reduced, kept after —
  /// and the root's sum is copied into target wherever it is. Device work goes on streams
  /// chosen by the key (high priority for priority > 0); completions come back as messages.
  void reduce(std::vector<tensor> values, tensor target, std::function<void(status)> done,
              std::int64_t key = -1, int priority = 0);
  /// The merge device of `key` (cuda(N)), or cpu when it has none yet.
  device merge_device(std::int64_t key) const;
  const topology& shape() const noexcept;
  /// Stops the actors (waits until they are gone). Call before the actor system goes.
  void shutdown();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kvactor::detail
