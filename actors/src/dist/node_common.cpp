#include "node_common.hpp"

#include <cstdio>
#include <mutex>

#include "message_limits.hpp"

namespace kvactor::detail {

net::identity make_identity(const cluster_config& cfg, const std::string& role, std::int64_t rank) {
  net::identity id;
  id.cluster_id = cfg.cluster_id;
  id.secret = cfg.secret;
  id.role = role;
  id.rank = rank;
  id.tls = cfg.tls;
  id.tls_cert_file = cfg.tls_cert_file;
  id.tls_key_file = cfg.tls_key_file;
  id.tls_ca_file = cfg.tls_ca_file;
  return id;
}

net::caps node_caps(const cluster_config& cfg) {
  net::caps c;
  c.max_message_bytes = cfg.max_message_bytes;
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
  // A longer message would make the worker's decoder refuse the whole reply.
  m.meta = encode_for_send(
      wire::reply_meta{static_cast<std::uint8_t>(s.code()), fit_message(s.message())});
  if (value && value->defined()) {
    m.payload = value->data_unchecked();
    m.payload_size = value->nbytes();
    m.keepalive = value->storage_ptr();
    m.release_inline = true;  // dropping a tensor's storage returns a buffer to the pool
  }
  conn->send(std::move(m));
}

void attach_pooled(net::outgoing& m, std::shared_ptr<buffer> b, std::uint64_t bytes) {
  if (!b) return;
  m.payload = b->data();
  m.payload_size = bytes;
  m.keepalive = std::move(b);
  m.release_inline = true;  // returning a buffer to the pool takes no lock of the caller's
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
  return reply_status(r->code, std::move(r->message));
}

status reply_status(std::uint8_t code, std::string message) {
  if (code == 0) return {};
  if (code > static_cast<std::uint8_t>(last_errc))
    return status{errc::protocol_error, "reply with unknown error code " + std::to_string(code)};
  return status{static_cast<errc>(code), std::move(message)};
}

std::string host_of(const std::string& address) {
  if (!address.empty() && address.front() == '[') {  // [v6]:port
    auto end = address.find(']');
    return end == std::string::npos ? address : address.substr(1, end - 1);
  }
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

std::string node_name(const std::string& role, std::int64_t rank) {
  if (role == "scheduler") return "the scheduler";
  if (rank < 0) return "a " + role + " (not ranked yet)";
  return role + " " + std::to_string(rank);
}

std::string close_cause(const status& why) {
  if (why.is_ok()) return "closed by the peer (it shut down)";
  if (why.message().empty()) return to_string(why.code());
  // A peer that said why it closed (a GOODBYE with an error, as the transport words it):
  // its own reason is the cause, e.g. "it stopped: lost worker 1 ...".
  static const std::string said = "peer closed the connection: ";
  if (why.message().compare(0, said.size(), said) == 0) return why.message().substr(said.size());
  return why.message();
}

status lost_status(const std::string& who, const std::string& cause) {
  return status{errc::peer_lost, "lost " + who + ": " + cause};
}

status stopped_status(const status& why) {
  return status{errc::peer_lost, "it stopped: " + why.message()};
}

status node_lost_status(const wire::node_lost_meta& m) {
  if (m.role == "cluster") return status{errc::peer_lost, m.reason};
  return lost_status(node_name(m.role, m.rank) + " (reported by the scheduler)", m.reason);
}

status node_lost_status(const result<wire::node_lost_meta>& m) {
  if (!m)
    return status{errc::peer_lost,
                  "the scheduler reported a lost node, in a message that "
                  "could not be decoded: " +
                      m.error().message()};
  return node_lost_status(*m);
}

std::string duration_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                               : std::to_string(d.count()) + " ms";
}

void log_line(const std::string& role, const std::string& text) {
  static std::mutex mu;
  std::lock_guard<std::mutex> g(mu);
  std::fprintf(stderr, "kvactor %s: %s\n", role.c_str(), text.c_str());
  std::fflush(stderr);
}

result<net::connection_ptr> connect_reporting(net::runtime& rt, const cluster_config& cfg,
                                              const std::string& host, std::uint16_t port,
                                              net::identity id, net::handlers h,
                                              std::chrono::steady_clock::time_point started,
                                              const std::string& role, const std::string& what) {
  auto p = std::make_shared<std::promise<result<net::connection_ptr>>>();
  auto f = p->get_future();
  rt.connect(host, port, std::move(id), node_caps(cfg), std::move(h), started + cfg.connect_timeout,
             [p](result<net::connection_ptr> r) { p->set_value(std::move(r)); });
  wait_reporting(f, started, cfg.connect_timeout, role, what);
  return f.get();
}

}  // namespace kvactor::detail
