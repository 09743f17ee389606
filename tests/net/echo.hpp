// The message that echoes a received one back: same type, flags, id, stream, priority, meta
// and payload (kept alive by the received buffer). Shared by the tests' echoing handler
// (net_test_util.hpp) and the shared-memory peer program (shm_peer.cpp).
// Thread-safety: a pure function.
#pragma once

#include <utility>

#include "kvactor/net/transport.hpp"

namespace kvactor::net {

inline outgoing echo_of(message&& m) {
  outgoing o;
  o.type = m.type;
  o.flags = m.flags;
  o.id = m.id;
  o.stream = m.stream;
  o.priority = m.priority;
  o.meta = std::move(m.meta);
  o.payload = m.payload_data;
  o.payload_size = m.payload_size;
  o.keepalive = std::move(m.payload_buffer);
  return o;
}

}  // namespace kvactor::net
