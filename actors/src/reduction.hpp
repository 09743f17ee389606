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
  void reduce(std::vector<tensor> values, tensor target, std::function<void(status)> done);
  const topology& shape() const noexcept;
  /// Stops the actors (waits until they are gone). Call before the actor system goes.
  void shutdown();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kvactor::detail
