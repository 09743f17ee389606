#include "node_common.hpp"

#include <cstdio>
#include <mutex>

namespace kvactor::detail {

net::identity make_identity(const cluster_config& cfg, const std::string& role,
                            std::int64_t rank) {
  net::identity id;
  id.cluster_id = cfg.cluster_id;
  id.secret = cfg.secret;
  id.role = role;
  id.rank = rank;
  return id;
}

net::caps node_caps() {
  net::caps c;
  return c;
}

void send_reply(const net::connection_ptr& conn, std::uint64_t id, std::uint64_t stream,
                std::int32_t priority, const status& s, const tensor* value) {
  net::outgoing m;
  m.type = static_cast<std::uint8_t>(wire::msg::reply);
  m.flags = wire::flag_response;
  m.id = id;
  m.stream = stream;
  m.priority = priority;
  m.meta = wire::encode(wire::reply_meta{static_cast<std::uint8_t>(s.code()), s.message()});
  if (value && value->defined()) {
    m.payload = value->data_unchecked();
    m.payload_size = value->nbytes();
    m.keepalive = value->storage_ptr();
    m.release_inline = true;  // dropping a tensor's storage returns a buffer to the pool
  }
  conn->send(std::move(m));
}

void send_control(const net::connection_ptr& conn, wire::msg type, std::uint64_t id,
                  std::vector<std::uint8_t> meta, std::uint16_t flags,
                  std::function<void(const status&)> on_sent) {
  net::outgoing m;
  m.type = static_cast<std::uint8_t>(type);
  m.flags = flags;
  m.id = id;
  m.priority = 1 << 20;  // control traffic goes ahead of tensor data
  m.meta = std::move(meta);
  m.on_sent = std::move(on_sent);
  conn->send(std::move(m));
}

status reply_status(const net::message& m) {
  auto r = wire::decode<wire::reply_meta>(m.meta);
  if (!r) return r.error();
  if (r->code == 0) return {};
  if (r->code > static_cast<std::uint8_t>(errc::internal))
    return status{errc::protocol_error, "reply with unknown error code " + std::to_string(r->code)};
  return status{static_cast<errc>(r->code), r->message};
}

std::string host_of(const std::string& address) {
  if (!address.empty() && address.front() == '[') {  // [v6]:port
    auto end = address.find(']');
    return end == std::string::npos ? address : address.substr(1, end - 1);
  }
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

void log_line(const std::string& role, const std::string& text) {
  static std::mutex mu;
  std::lock_guard<std::mutex> g(mu);
  std::fprintf(stderr, "kvactor %s: %s\n", role.c_str(), text.c_str());
  std::fflush(stderr);
}

}  // namespace kvactor::detail
