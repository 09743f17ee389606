// Every command a server shard can receive, as data, and the one function that applies them
// to its server_core. The dispatcher (server_commands.cpp) checks a worker's command and
// sends one of these to every shard (server_messages.hpp: shard_command); what the shards
// report back (profiles, states, checks) they add to a collector the command shares.
// Thread-safety: commands are values, handed over by message; a collector's add may be
// called from any thread at once (each shard adds from its own), its result read after the
// last shard has answered (command_ack).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <variant>
#include <vector>

#include "kvactor/result.hpp"
#include "kvactor/serialization/optimizer_states.hpp"
#include "kvactor/updater.hpp"
#include "server_core.hpp"

namespace kvactor::detail {

/// The profiles of every shard, summed.
class profile_total {
 public:
  void add(const server_profile& p);
  server_profile sum() const;

 private:
  mutable std::mutex mu_;
  server_profile sum_;  // guarded by mu_
};

/// The state records of every shard, in the order the shards added them.
class states_total {
 public:
  void add(std::vector<wire::key_state_record> mine);
  std::vector<wire::key_state_record> take();

 private:
  std::mutex mu_;
  std::vector<wire::key_state_record> records_;  // guarded by mu_
};

/// How a file's records fit the shards: how many of them the shards hold, or the first error.
class states_check {
 public:
  void add(const result<std::size_t>& r);
  std::size_t matched() const;
  status error() const;

 private:
  mutable std::mutex mu_;
  std::size_t matched_ = 0;  // guarded by mu_
  status error_;             // ditto
};

namespace cmd {

/// Nothing to change: the round through every shard is the point (stop_server answers
/// once every command before it has been applied).
struct noop {};
struct set_updater {
  std::shared_ptr<const updater> upd;
};
struct set_sync {
  bool sync = true;
};
struct set_multi_precision {
  bool on = false;
};
struct set_compression {
  compression_config config;
};
/// Starts (a fresh profile) or stops profiling, or neither; then adds the shard's profile.
struct profiler {
  enum class change { none, run, stop };
  change state = change::none;
  std::shared_ptr<profile_total> total;
};
/// The shard's optimizer states go to `into`.
struct snapshot_states {
  std::shared_ptr<states_total> into;
};
/// Checks `records` against the state the optimizer keeps (the file's, `inner` under
/// multi-precision when `mp`; without one the shard's own); nothing changes yet.
struct check_states {
  std::shared_ptr<const std::vector<wire::key_state_record>> records;
  std::shared_ptr<const updater> inner;
  bool mp = false;
  std::shared_ptr<states_check> result;
};
/// Installs `records` (checked on every shard first), and the file's optimizer if it has one.
struct restore_states {
  std::shared_ptr<const std::vector<wire::key_state_record>> records;
  std::shared_ptr<const updater> inner;
  bool mp = false;
};
/// Worker `worker` pushes no more (server_core::worker_left).
struct worker_left {
  std::int64_t worker = -1;
};

}  // namespace cmd

using command_body =
    std::variant<cmd::noop, cmd::set_updater, cmd::set_sync, cmd::set_multi_precision,
                 cmd::set_compression, cmd::profiler, cmd::snapshot_states, cmd::check_states,
                 cmd::restore_states, cmd::worker_left>;

/// Applies c to core: what each command does to a shard, in one place.
void apply_command(server_core& core, const command_body& c);

}  // namespace kvactor::detail
