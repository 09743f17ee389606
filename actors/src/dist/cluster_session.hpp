// A worker's membership of its cluster: joining (the scheduler through the link every node
// shares, scheduler_link.hpp; the node table, a connection per server, the rank bound on
// them), the control plane (barriers and
// commands to every server, each under a control id of the request tracker), node loss
// (the first loss breaks the session: everything pending and later fails with it), and the
// orderly goodbye. The data path (cluster_router.hpp) uses its connections and tracker.
// Thread-safety: join() and leave()/close() from the store's owner thread; the rest from
// any thread (transport handlers included) once joined.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "../op.hpp"
#include "cluster_config.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "request_tracker.hpp"
#include "scheduler_link.hpp"

namespace kvactor::detail {

class cluster_session {
 public:
  using control_fn = request_tracker::control_fn;

  /// Calls it makes (barrier, command_all) count in `counter` (the store's wait_all()).
  cluster_session(cluster_config cfg, std::shared_ptr<op_counter> counter);

  /// Joins the cluster; throws kvactor::error. `self` is how transport handlers reach this
  /// session (weakly: the store may go first). `to_servers` is the data path's on_message and
  /// payload_destination for the server connections; the session adds their on_close.
  /// Rank 0 sets the servers' sync mode (`sync`). Ends with a barrier of all workers.
  void join(std::weak_ptr<cluster_session> self, net::handlers to_servers, bool sync);

  future<void> barrier();
  /// A barrier whose answer goes to done (refused at once, with the loss, once broken).
  void barrier(control_fn done);
  /// One command to every server; completes when all answered (the first error wins).
  future<void> command_all(wire::command cmd, const std::string& body);

  /// A node died, froze, or said so: everything pending fails, and so does everything later.
  void on_connection_lost(const status& why);
  /// A reply's status; peer_lost means a server already knows of a lost node, so this worker
  /// is broken too (before the scheduler's notice reaches it).
  status reply_of(const net::message& m);
  /// An answer's status (from a batch reply), noted the same way.
  status reply_of(status s);

  /// The orderly goodbye of a joined, unbroken worker (worker_done, barrier, rank 0 stops the
  /// servers, node_done), or the broken worker's parting word to the scheduler.
  void leave();
  /// Stops the transport (on the caller's thread: never from a transport handler).
  void close();

  request_tracker& tracker() noexcept { return tracker_; }
  const net::connection_ptr& server(std::uint32_t s) const { return servers_[s]; }
  const net::caps& caps() const noexcept { return caps_; }
  const cluster_config& config() const noexcept { return cfg_; }
  std::int64_t rank() const noexcept { return rank_; }
  std::uint32_t num_workers() const noexcept { return num_workers_; }
  std::uint32_t num_servers() const noexcept { return num_servers_; }

 private:
  void on_scheduler_event(const net::connection_ptr& c, scheduler_event&& e);
  // Control messages' on_sent: a message the transport refused fails its call. (A closed
  // connection's pending messages fail through on_connection_lost, with the lost node named.)
  std::function<void(const status&)> refused(std::uint64_t id);
  // Registers done under a fresh id, then sends conn a `type` message with meta_of(id); a
  // broken session fails done at once instead.
  template <class MetaOf>
  void control(const net::connection_ptr& conn, wire::msg type, MetaOf&& meta_of, control_fn done);
  std::shared_ptr<call_state> begin_call(std::size_t parts) const {
    return std::make_shared<call_state>(parts, counter_);
  }

  cluster_config cfg_;
  net::caps caps_;
  std::shared_ptr<op_counter> counter_;
  std::weak_ptr<cluster_session> self_;
  std::unique_ptr<net::runtime> rt_;
  scheduler_link scheduler_;
  std::vector<net::connection_ptr> servers_;
  std::promise<result<wire::node_table_meta>> table_;
  std::atomic<bool> table_set_{false};
  std::int64_t rank_ = -1;
  std::uint32_t num_workers_ = 0;
  std::uint32_t num_servers_ = 0;
  request_tracker tracker_;
  std::atomic<bool> closing_{false};
  std::atomic<bool> joined_{false};  // join() completed
};

}  // namespace kvactor::detail
