#include "message_limits.hpp"

#include <algorithm>

#include "kvactor/serialization/protocol.hpp"

namespace kvactor::detail {

std::uint64_t max_payload_bytes(const net::caps& c) {
  // The transport takes a payload up to max_message_bytes that fits in one slice or in the
  // bytes a receiver may hold for partial messages.
  return std::min<std::uint64_t>(c.max_message_bytes,
                                 std::max<std::uint64_t>(c.max_slice_bytes, c.max_buffered_bytes));
}

status check_message(const net::caps& c, std::size_t meta_bytes, std::uint64_t payload_bytes,
                     std::string_view what) {
  if (meta_bytes > c.max_meta_bytes)
    return status{errc::invalid_argument,
                  std::string{what} + ": its message metadata of " + std::to_string(meta_bytes) +
                      " bytes is over the cluster's limit of " + std::to_string(c.max_meta_bytes) +
                      " bytes per message"};
  const std::uint64_t cap = max_payload_bytes(c);
  if (payload_bytes > cap)
    return status{errc::invalid_argument,
                  std::string{what} + ": a payload of " + std::to_string(payload_bytes) +
                      " bytes is over the cluster's limit of " + std::to_string(cap) +
                      " bytes per message (KVACTOR_MAX_MESSAGE_BYTES)"};
  return {};
}

status check_key_for_wire(const key& k) {
  if (!k.is_string() || k.as_string().size() <= wire::max_string_bytes) return {};
  return status{errc::invalid_argument,
                "key \"" + k.as_string().substr(0, 32) + "...\" has a name of " +
                    std::to_string(k.as_string().size()) +
                    " bytes; a cluster message carries key names of at most " +
                    std::to_string(wire::max_string_bytes) + " bytes"};
}

std::string fit_message(const std::string& text) {
  if (text.size() <= wire::max_string_bytes) return text;
  return text.substr(0, wire::max_string_bytes - 3) + "...";
}

}  // namespace kvactor::detail
