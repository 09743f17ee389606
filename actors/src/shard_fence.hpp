// The store-wide actions a local shard runs at a fence (shard_core::receive_fence): every
// one it can receive, as data. local_router.cpp sends them (save and load of optimizer
// states); shard_core::run_fence applies them.
// Thread-safety: the fences are values, handed over by message; states_collector::add may be
// called from any thread at once (each shard adds from its own).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "key_registry.hpp"
#include "kvactor/optimizer_config.hpp"
#include "kvactor/tensor.hpp"
#include "kvactor/updater.hpp"
#include "op.hpp"

namespace kvactor::detail {

/// One key's optimizer state, for save/load (shard_core::state_record).
struct shard_state_record {
  key_info_ptr info;
  std::uint64_t count = 0;
  std::vector<tensor> slots;  // deep copies
  tensor master;              // multi-precision master weight, deep copy (or undefined)
};

/// One save's states from every shard: each adds its own at its fence; the last one writes
/// the file and completes the call.
class states_collector {
 public:
  states_collector(std::size_t shards, std::string file, std::optional<optimizer_config> dump,
                   std::shared_ptr<call_state> call);
  void add(std::vector<shard_state_record> mine);

 private:
  std::mutex mu_;
  std::vector<shard_state_record> records_;  // guarded by mu_
  std::size_t left_;                         // ditto
  const std::string file_;
  const std::optional<optimizer_config> dump_;  // the optimizer the file records, if any
  const std::shared_ptr<call_state> call_;
};

/// Save: the shard's states of keys owned by `owner` go to the collector.
struct save_states_fence {
  std::shared_ptr<const updater> owner;
  std::shared_ptr<states_collector> into;
};

/// Load: the shard installs `records` (checked against the store already, all of its own
/// keys), owned by `owner`, then answers its part of `call`.
struct load_states_fence {
  std::shared_ptr<const std::vector<shard_state_record>> records;
  std::shared_ptr<const updater> owner;
  std::shared_ptr<call_state> call;
};

using shard_fence = std::variant<save_states_fence, load_states_fence>;

}  // namespace kvactor::detail
