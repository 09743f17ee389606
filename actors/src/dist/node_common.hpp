// Pieces every cluster node uses: identities, transport caps, replies, and how nodes word
// their peers and their loss.
// Thread-safety: stateless helpers.
#pragma once

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "cluster_config.hpp"
#include "kvactor/detail/recycling_allocator.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor::detail {

net::identity make_identity(const cluster_config& cfg, const std::string& role, std::int64_t rank);
/// The transport's caps every node of a cluster uses (the message cap from the cluster's
/// configuration).
net::caps node_caps(const cluster_config& cfg);

/// Sends a reply (same id and stream as the request) with a status (its message cut to what a
/// reply carries) and, optionally, the bytes of `value`, which the transport keeps alive until
/// sent.
void send_reply(const net::connection_ptr& conn, std::uint64_t id, std::uint64_t stream,
                std::int32_t priority, const status& s, const tensor* value);

/// A message's metadata bytes, in a vector the transport gives back once the message is
/// written (byte_vector_cache): a vector per message sent was an allocation per message.
template <class T>
std::vector<std::uint8_t> encode_for_send(const T& meta) {
  auto v = byte_vector_cache::take();
  wire::encode_into(meta, v);
  return v;
}

/// Sends a control message (no payload).
/// m's payload: the first `bytes` of the pooled buffer b (none when b is null), which m keeps
/// and may release on the sending thread.
void attach_pooled(net::outgoing& m, std::shared_ptr<buffer> b, std::uint64_t bytes);

void send_control(const net::connection_ptr& conn, wire::msg type, std::uint64_t id,
                  std::vector<std::uint8_t> meta, std::uint16_t flags = 0,
                  std::function<void(const status&)> on_sent = nullptr);

/// The status a reply carries.
status reply_status(const net::message& m);
/// The status an answer's error code and message stand for (an unknown code: protocol_error).
status reply_status(std::uint8_t code, std::string message);

/// "host" of "host:port".
std::string host_of(const std::string& address);

/// One line on stderr, prefixed "kvactor <role>: ".
void log_line(const std::string& role, const std::string& text);

/// A node as messages name it: "the scheduler", "server 1", "worker 0", and before ranks are
/// assigned "a worker (not ranked yet)": never a rank of -1.
std::string node_name(const std::string& role, std::int64_t rank);

/// Why a connection closed, in words for a message: the transport's reason without its error
/// code ("connection closed by the peer", "no heartbeat for 3 s"), or the reason the peer gave
/// in its GOODBYE ("it stopped: lost worker 1 ..."); an orderly close (ok) reads "closed by
/// the peer (it shut down)".
std::string close_cause(const status& why);

/// peer_lost, "lost <who>: <cause>".
status lost_status(const std::string& who, const std::string& cause);

/// peer_lost, "it stopped: <why>": what a node that leaves because its cluster broke (`why`)
/// tells its peers as it closes, so that they pass on the cause.
status stopped_status(const status& why);

/// What a node reports when the scheduler tells it (or answers a barrier) that a node is
/// gone: "lost worker 1 (reported by the scheduler): no heartbeat for 3 s", or the reason
/// alone when the cluster as a whole failed (role "cluster": it never assembled).
status node_lost_status(const wire::node_lost_meta& m);
status node_lost_status(const result<wire::node_lost_meta>& m);

/// "60 s", or "1500 ms" when not whole seconds.
std::string duration_text(std::chrono::milliseconds d);

/// How often a node that waits for its cluster says so.
inline constexpr std::chrono::seconds progress_interval{3};

/// Waits for f until `started` + `timeout`, logging "still waiting for <what>, N s (gives up
/// after T s)" every progress_interval (N counted from `started`): a node whose scheduler is
/// unreachable would otherwise be silent for the whole connect timeout. Returns whether f
/// became ready.
template <class T>
bool wait_reporting(std::future<T>& f, std::chrono::steady_clock::time_point started,
                    std::chrono::milliseconds timeout, const std::string& role,
                    const std::string& what) {
  using namespace std::chrono;
  const auto deadline = started + timeout;
  auto next = started + progress_interval;
  while (next <= steady_clock::now())
    next += progress_interval;
  for (;; next += progress_interval) {
    if (f.wait_until(std::min(next, deadline)) == std::future_status::ready) return true;
    const auto now = steady_clock::now();
    if (now >= deadline) return false;
    log_line(role, "still waiting for " + what + ", " +
                       std::to_string(duration_cast<seconds>(now - started).count()) +
                       " s (gives up after " + duration_text(timeout) + ")");
  }
}

/// Connects to host:port as `id` with the cluster's caps, giving up at `started` + the
/// connect timeout and logging progress as wait_reporting does ("still waiting for <what>").
/// The transport answers by the deadline, so this returns by then.
result<net::connection_ptr> connect_reporting(net::runtime& rt, const cluster_config& cfg,
                                              const std::string& host, std::uint16_t port,
                                              net::identity id, net::handlers h,
                                              std::chrono::steady_clock::time_point started,
                                              const std::string& role, const std::string& what);

}  // namespace kvactor::detail
