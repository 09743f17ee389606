// A listening socket: accepts connections and hands each to a conn_impl, which authenticates
// it. Until they authenticate, the listener keeps its connections in accept order and holds
// at most caps::max_pending_connections of them: a new one closes the oldest, so idle
// connections can neither exhaust file descriptors nor memory. Lines about refused
// connections go through one log_limiter per listener.
//
// Thread-safety: start() and stop() from any thread; everything else runs on the listener's
// strand.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <cstdint>
#include <deque>
#include <memory>

#include "connection.hpp"
#include "core.hpp"
#include "kvactor/net/transport.hpp"
#include "log_limiter.hpp"

namespace kvactor::net::detail {

class listener_impl : public std::enable_shared_from_this<listener_impl> {
 public:
  listener_impl(std::shared_ptr<core> rt, boost::asio::ip::tcp::acceptor acc, identity self, caps c,
                handlers h, std::shared_ptr<tls_context> tls);

  std::uint16_t port() const noexcept { return port_; }
  void start();
  void stop();

 private:
  void accept_next();
  void on_accept(const boost::system::error_code& ec, const std::shared_ptr<conn_impl>& c);
  /// Makes room for c among the pending connections (closing the oldest) and records it.
  void admit(const std::shared_ptr<conn_impl>& c);

  const std::shared_ptr<core> rt_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acc_;
  boost::asio::steady_timer backoff_;
  const identity self_;
  const caps caps_;
  const handlers h_;
  const std::shared_ptr<tls_context> tls_;  // null: plaintext
  const std::uint16_t port_;
  const std::shared_ptr<log_limiter> refusals_;
  bool stopped_ = false;                          // strand only
  std::deque<std::weak_ptr<conn_impl>> pending_;  // strand only; oldest first
};

}  // namespace kvactor::net::detail
