// Pieces every cluster node uses: identities, transport caps, replies, and CAF message types
// for what the transport hands to actors.
// Thread-safety: stateless helpers.
#pragma once

#include <memory>
#include <string>

#include "cluster_config.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/protocol.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor::detail {

net::identity make_identity(const cluster_config& cfg, const std::string& role,
                            std::int64_t rank);
net::caps node_caps();

/// Sends a reply (same id and stream as the request) with a status and, optionally, the
/// bytes of `value`, which the transport keeps alive until sent.
void send_reply(const net::connection_ptr& conn, std::uint64_t id, std::uint64_t stream,
                std::int32_t priority, const status& s, const tensor* value);

/// Sends a control message (no payload).
void send_control(const net::connection_ptr& conn, wire::msg type, std::uint64_t id,
                  std::vector<std::uint8_t> meta, std::uint16_t flags = 0,
                  std::function<void(const status&)> on_sent = nullptr);

/// The status a reply carries.
status reply_status(const net::message& m);

/// "host" of "host:port".
std::string host_of(const std::string& address);

/// One line on stderr, prefixed "kvactor <role>: ".
void log_line(const std::string& role, const std::string& text);

/// Received message, as it travels from the transport to an actor.
struct inbound {
  net::connection_ptr conn;
  net::message msg;
};
using inbound_ptr = std::shared_ptr<inbound>;

/// A connection that closed, and why.
struct closed_conn {
  net::connection_ptr conn;
  status why;
};

}  // namespace kvactor::detail
