// What one cluster message may carry, checked before it is sent: the transport refuses a
// message over its caps only through that message's on_sent, so a sender that waits for a
// reply would otherwise wait forever. Every node uses the same caps (node_caps), so a
// message that passes here is one the peer accepts too.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvactor/error.hpp"
#include "kvactor/key.hpp"
#include "kvactor/net/transport.hpp"

namespace kvactor::detail {

/// The most payload bytes one message may carry under c (what net::connection::send accepts).
std::uint64_t max_payload_bytes(const net::caps& c);

/// ok, or invalid_argument naming `what`, its size and the cap it is over, for a message of
/// `meta_bytes` of metadata and `payload_bytes` of payload. (`what` is a view: every message a
/// worker sends passes here, and a long name would otherwise be a string allocated per message.)
status check_message(const net::caps& c, std::size_t meta_bytes, std::uint64_t payload_bytes,
                     std::string_view what);

/// ok, or invalid_argument for a string key whose name is longer than a message may carry.
status check_key_for_wire(const key& k);

/// A status message cut to what a reply or a notice may carry (wire::max_string_bytes),
/// ending in "..." when cut.
std::string fit_message(const std::string& text);

}  // namespace kvactor::detail
