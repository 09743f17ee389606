// Setting a connection up: the transport's config check, construction, the connector's
// resolve/connect/retry, and the socket setup that starts the handshake (plaintext, or TLS
// first: tls.cpp). The rest of conn_impl: the writer in connection_send.cpp, the read loop in
// connection_read.cpp, the handshake and transport frames in connection_handshake.cpp, timers
// in connection_timer.cpp, close in connection_close.cpp.
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>

#include <cstdio>
#include <utility>

#include "connection.hpp"

namespace kvactor::net::detail {

namespace asio = boost::asio;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {
constexpr milliseconds connect_retry{50};
}  // namespace

void log_line(const std::string& text) {
  const std::string line = "kvactor.net: " + text + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

std::string to_string(const asio::ip::tcp::endpoint& ep) {
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

status check_config(const identity& self, const caps& c) {
  auto bad = [](std::string what) { return status{errc::invalid_argument, std::move(what)}; };
  if (self.role.size() > handshake::max_role_size)
    return bad("role '" + self.role + "' is longer than " +
               std::to_string(handshake::max_role_size) + " bytes");
  if (self.cluster_id.size() > handshake::max_cluster_id_size)
    return bad("cluster id is longer than " + std::to_string(handshake::max_cluster_id_size) +
               " bytes");
  if (c.max_slice_bytes == 0) return bad("caps.max_slice_bytes must be positive");
  if (c.max_partial_messages == 0) return bad("caps.max_partial_messages must be positive");
  if (c.handshake_timeout.count() <= 0 || c.frame_timeout.count() <= 0 ||
      c.heartbeat_interval.count() <= 0 || c.peer_timeout.count() <= 0)
    return bad("caps timeouts must be positive");
  if (c.close_linger.count() < 0) return bad("caps.close_linger must not be negative");
  if (c.partial_message_timeout.count() <= 0 || c.refusal_log_interval.count() <= 0)
    return bad("caps timeouts must be positive");
  if (c.max_pending_connections == 0) return bad("caps.max_pending_connections must be positive");
  return status::ok();
}

conn_impl::conn_impl(std::shared_ptr<core> rt, side s, identity self, caps c, handlers h,
                     std::shared_ptr<tls_context> tls)
    : rt_(std::move(rt)),
      strand_(asio::make_strand(rt_->io)),
      sock_(rt_->io),
      wire_(sock_, strand_, std::move(tls)),
      timer_(rt_->io),
      resolver_(rt_->io),
      side_(s),
      self_(std::move(self)),
      caps_(c),
      h_(std::move(h)),
      fcaps_{c.max_meta_bytes, c.max_message_bytes, c.max_slice_bytes},
      sink_timer_(rt_->io),
      q_(c.max_slice_bytes, c.max_partial_messages, c.max_buffered_bytes) {
  set_read_buffer(handshake_buffer_size);
}

conn_impl::~conn_impl() {
  set_read_buffer(0);
}

void conn_impl::set_read_buffer(std::size_t size) {
  rt_->read_buffer_bytes += size;
  rt_->read_buffer_bytes -= rbuf_.size();
  if (size == 0) {
    std::vector<std::uint8_t>{}.swap(rbuf_);
    rpos_ = rend_ = 0;
  } else {
    rbuf_.resize(size);  // keeps the unread bytes at [rpos_, rend_)
  }
}

void conn_impl::leave_pending() {
  if (!counted_pending_) return;
  counted_pending_ = false;
  --rt_->pending;
}

std::string conn_impl::name() const {
  if (!remote_.empty()) return remote_;
  return host_ + ":" + std::to_string(port_);
}

bool conn_impl::is_open() const {
  return phase_.load() == phase::open && !close_requested_.load();
}

// ---------------------------------------------------------------- starting

void conn_impl::evict(status why) {
  asio::post(strand_, [self = shared_from_this(), why = std::move(why)] {
    if (self->phase_.load() <= phase::handshake) self->do_close(why, true, true);
  });
}

void conn_impl::start_accepted() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->phase_.load() != phase::idle) return;  // closed before it started
    self->on_tcp_ready();
  });
}

void conn_impl::set_target(std::string host, std::uint16_t port, clock::time_point deadline,
                           done_fn done) {
  host_ = std::move(host);
  port_ = port;
  deadline_ = deadline;
  done_ = std::move(done);
}

void conn_impl::start_connect() {
  asio::post(strand_, [self = shared_from_this()] {
    if (self->phase_.load() != phase::idle) return;
    self->phase_ = phase::connecting;
    error_code ec;
    const auto addr = asio::ip::make_address(self->host_, ec);
    if (!ec) {
      self->endpoints_.emplace_back(addr, self->port_);
      self->try_connect();
    } else {
      self->connect_in_flight_ = true;  // resolving
      self->resolver_.async_resolve(
          self->host_, std::to_string(self->port_),
          asio::bind_executor(
              self->strand_,
              [self](const error_code& ec, const asio::ip::tcp::resolver::results_type& rs) {
                if (self->phase_.load() != phase::connecting) return;
                if (ec) {
                  self->do_close(status{errc::peer_lost,
                                        "cannot resolve " + self->host_ + ": " + ec.message()},
                                 false, false);
                  return;
                }
                for (const auto& r : rs)
                  self->endpoints_.push_back(r.endpoint());
                self->try_connect();
                self->arm_timer();
              }));
    }
    self->arm_timer();
  });
}

void conn_impl::try_connect() {
  connect_in_flight_ = true;
  asio::async_connect(
      sock_, endpoints_,
      asio::bind_executor(strand_, [self = shared_from_this()](const error_code& ec,
                                                               const asio::ip::tcp::endpoint&) {
        if (self->phase_.load() != phase::connecting) return;
        self->connect_in_flight_ = false;
        if (!ec) {
          self->on_tcp_ready();
          return;
        }
        // A peer that is still starting refuses; try again until the deadline.
        self->last_connect_error_ = ec.message();
        error_code ignored;
        self->sock_.close(ignored);
        self->retry_at_ = clock::now() + connect_retry;
        self->arm_timer();
      }));
}

void conn_impl::on_tcp_ready() {
  error_code ec;
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (!ec) sock_.set_option(asio::socket_base::keep_alive(true), ec);
  // Non-blocking from here on: send() writes directly from its caller's thread and must
  // never block there.
  if (!ec) sock_.non_blocking(true, ec);
  const auto remote = sock_.remote_endpoint(ec);
  if (!ec) remote_ = to_string(remote);
  const auto local = sock_.local_endpoint(ec);
  if (!ec) local_ = to_string(local);
  if (ec) {
    do_close(status{errc::peer_lost, "socket setup failed: " + ec.message()}, true, false);
    return;
  }
  const auto now = clock::now();
  phase_ = phase::handshake;
  handshake_deadline_ = now + caps_.handshake_timeout;
  last_recv_ = now;
  {
    std::lock_guard<std::mutex> g(mu_);
    last_send_ = now;
  }
  if (side_ == side::acceptor) {
    counted_pending_ = true;
    ++rt_->pending;
  }
  arm_timer();  // the handshake timeout covers TLS too
  if (wire_.secure())
    start_tls();
  else
    begin_handshake();
}

}  // namespace kvactor::net::detail
