// What a server does with a message from a worker, on the transport's I/O thread that
// received it: a request (init, push, pull, pushpull, row-sparse) is decoded and sent
// straight to the shard actor owning its key part (one hop), or handled on the I/O thread
// itself when it is small and that shard is idle (server_gate.hpp); a fused batch of them is split
// by shard, each shard getting its requests as one message, their answers gathered
// (reply_batch.hpp); a command (optimizer, sync mode,
// compression, profiler, optimizer states, stop) is checked, then applied on every shard in
// the order commands arrived, and answered when the last shard has applied it. A big dist_sync
// push may instead be summed into its round as it arrives (sink_for, push_intake.hpp). A
// connection must prove its worker rank first (bind_rank, rank_binding.hpp).
// server_dispatch.cpp: requests and rank binding; server_commands.cpp: commands.
// Thread-safety: on_message and connection_closed may be called from any thread at once; the
// server-wide settings commands keep (optimizer, compression) are guarded by a mutex; shards
// are reached only by message.
#pragma once

#include <caf/actor.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kvactor/detail/compression.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "rank_binding.hpp"
#include "server_core.hpp"
#include "server_gate.hpp"
#include "shard_commands.hpp"

namespace kvactor::detail {

struct shard_batch;    // server_messages.hpp
struct shard_command;  // ditto

/// Where a server's worker-named files go (server_files.hpp); empty: that kind is refused.
struct server_file_dirs {
  std::string profiles;  ///< KVACTOR_PROFILE_DIR
  std::string states;    ///< KVACTOR_STATES_DIR
};

class dispatcher : public std::enable_shared_from_this<dispatcher> {
 public:
  /// `ctl` gets stop_atom after stop_server; `rank` is this server's, -1 until the node
  /// table came.
  /// `gates[i]` is shard i's (server_gate.hpp): a small request runs on the I/O thread
  /// when that shard is idle.
  dispatcher(std::vector<caf::actor> shards, std::vector<std::shared_ptr<server_gate>> gates,
             caf::actor ctl, std::shared_ptr<std::atomic<std::int64_t>> rank, server_file_dirs dirs,
             std::shared_ptr<rank_binding> binding, const net::caps& caps);

  void on_message(const net::connection_ptr& c, net::message&& m);
  void connection_closed(const net::connection_ptr& c);
  /// The transport's payload_sink_for: a big dense dist_sync push whose shard is idle and whose
  /// round takes it (server_core::open_intake) is summed into the round as it arrives
  /// (push_intake.hpp); null for everything else, which arrives whole.
  net::payload_sink_ptr sink_for(const net::connection_ptr& c, const net::message_head& h);

 private:
  using reply_fn = std::function<void(const status&)>;

  // server_dispatch.cpp
  void bind(const net::connection_ptr& c, const net::message& m);
  // The request a data message stands for (its reply bound to the connection), or null after
  // replying that its metadata does not decode.
  std::shared_ptr<server_request> request_of(const net::connection_ptr& c, const net::message& m,
                                             wire::msg type, std::int64_t worker);
  // The request for a decoded meta, its reply bound to the connection.
  static std::shared_ptr<server_request> make_request(const net::connection_ptr& c,
                                                      wire::data_meta meta, wire::msg type,
                                                      std::int64_t worker, std::uint64_t id,
                                                      std::uint64_t stream, std::int32_t prio);
  // Sets r.route (its key part's part_hash) and returns the shard that owns the part.
  std::size_t shard_of(server_request& r) const;
  void to_shard(std::shared_ptr<server_request> r);
  void data(const net::connection_ptr& c, net::message&& m, wire::msg type, std::int64_t worker);
  void streamed(const net::connection_ptr& c, const net::message& m);
  status decode_payload(server_request* r, net::message& m);
  void rows(const net::connection_ptr& c, net::message&& m, wire::msg type, std::int64_t worker);
  status decode_rows(server_request* r, const net::message& m);
  void batch(const net::connection_ptr& c, net::message& m, std::int64_t worker);
  static void trace_receive(const server_request& r, std::int64_t t0, std::int64_t bytes);
  static void trace_reply(const server_request& r, std::int64_t t0, const tensor* value);
  /// Sends `what` to every shard; done() after the last has applied it.
  void fan_out(const command_body& what, std::function<void()> done);

  // server_commands.cpp
  void command(const net::connection_ptr& c, const net::message& m, std::int64_t worker);
  std::optional<optimizer_config> current_optimizer();
  void load_states(const reply_fn& reply, const std::string& file);

  // Sends a request, a batch's requests for one shard or a command to shard s, counted in its
  // gate until the shard takes it (server_gate.hpp).
  void post(std::size_t s, server_request_ptr r);
  void post(std::size_t s, shard_batch b);
  void post(std::size_t s, shard_command c);

  std::vector<caf::actor> shards_;
  std::vector<std::shared_ptr<server_gate>> gates_;
  caf::actor ctl_;
  std::shared_ptr<std::atomic<std::int64_t>> rank_;
  const server_file_dirs dirs_;
  std::shared_ptr<rank_binding> binding_;
  const std::size_t max_reply_meta_;     // what a batch reply's metadata may take
  const std::uint64_t max_reply_bytes_;  // and its payload
  std::mutex optimizer_mu_;
  std::optional<optimizer_config> optimizer_;  // guarded by optimizer_mu_
  bool multi_precision_ = false;               // ditto
  compression::params gc_;                     // ditto
};

}  // namespace kvactor::detail
