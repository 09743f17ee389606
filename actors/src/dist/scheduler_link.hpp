// A node's membership with the scheduler, one piece for the worker's cluster session and the
// server: connecting (with progress lines), registering as a role, the scheduler's messages
// as typed events, its connection's loss, and the goodbye (node_done). CAF-free: the server's
// control actor gets the events as its own messages, the worker's session handles them where
// they arrive. The scheduler is the other end of this protocol (scheduler.cpp); what both ends
// word the same (node names, loss texts) is in node_common.hpp.
// Thread-safety: read_scheduler_message is pure. A scheduler_link is connected and registered
// from one thread; its handlers then run on the transport's I/O thread, one at a time (the
// connection's strand); connection(), say_done() and leave_broken() from any thread once
// connect() returned (a thread that learnt of the link by message, or the one that connected).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "cluster_config.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/protocol.hpp"

namespace kvactor::detail {

/// What one message of the scheduler means to a node.
struct scheduler_event {
  enum class kind : std::uint8_t {
    table,       ///< the node table, decoded and checked: `table`
    bad_table,   ///< a node table that does not decode, or has no rank key: `why`
    lost,        ///< a node is lost, or the cluster never assembled: `why` (peer_lost)
    reply,       ///< (workers only) the answer to control id `id`: `why` is its status
    unexpected,  ///< a message this role never gets: `why` (protocol_error naming its type)
  };
  kind what = kind::unexpected;
  wire::node_table_meta table;
  std::uint64_t id = 0;
  status why;
};

/// Classifies the scheduler's message m for a node of `role` ("worker" or "server"). Only a
/// worker asks the scheduler anything (barriers), so only a worker takes replies.
scheduler_event read_scheduler_message(const std::string& role, const net::message& m);

/// A node's loss of its scheduler connection, closed for `why`: "lost the scheduler: <cause>".
status scheduler_lost_status(const status& why);

class scheduler_link {
 public:
  /// A classified message, with the connection it came on (which a node may close with the
  /// event's status).
  using event_fn = std::function<void(const net::connection_ptr&, scheduler_event&&)>;
  /// The connection closed: scheduler_lost_status of why.
  using lost_fn = std::function<void(const status&)>;

  /// For a node of `role` ("worker" or "server") of the cluster `cfg` describes.
  scheduler_link(cluster_config cfg, std::string role);

  /// "host:port" of the scheduler (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT).
  const std::string& address() const noexcept { return address_; }

  /// Connects to the scheduler, logging "still waiting for the scheduler at ..." as the wait
  /// goes on, and giving up at `started` + the connect timeout: then the transport's code with
  /// "cannot reach the scheduler at <address> (DMLC_PS_ROOT_URI:DMLC_PS_ROOT_PORT) within
  /// <timeout>: <why>". Once connected, on_event gets each message of the scheduler and
  /// on_lost the connection's close, on the transport's I/O thread; whatever they capture
  /// must outlive `rt`.
  status connect(net::runtime& rt, std::chrono::steady_clock::time_point started, event_fn on_event,
                 lost_fn on_lost);

  /// Registers with the scheduler: a worker with no address, a server with where workers
  /// reach it. The node table (an event) answers once every node has registered.
  void register_node(const std::string& host = {}, std::uint16_t port = 0);

  /// The orderly goodbye of the node ranked `rank`: node_done; on_sent once it is on the wire
  /// or could not be sent.
  void say_done(std::int64_t rank, std::function<void(const status&)> on_sent);
  /// The parting word of a node that leaves because its cluster broke (stopped_status(why)),
  /// so that the scheduler tells the others the cause rather than only that this node left.
  void leave_broken(const status& why);

  /// The connection; null until connect() succeeded.
  const net::connection_ptr& connection() const noexcept { return conn_; }

 private:
  cluster_config cfg_;
  std::string role_;
  std::string address_;
  net::connection_ptr conn_;
};

}  // namespace kvactor::detail
