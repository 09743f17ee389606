// Helpers for the transport tests: identities and caps, an inbox and a close log fed by the
// handlers, payload patterns, and raw POSIX-socket peers that speak the wire protocol byte by
// byte (or refuse to). Synchronisation is by condition variables and futures with bounded
// waits, never by sleeping.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "echo.hpp"
#include "kvactor/net/handshake.hpp"
#include "kvactor/net/transport.hpp"
#include "kvactor/serialization/frame.hpp"

namespace kvactor::net::testing {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;
namespace fr = serialization;

inline constexpr auto long_wait = std::chrono::seconds(20);

inline identity ident(std::string role, std::int64_t rank, std::string secret = "s3cret",
                      std::string cluster = "test-cluster") {
  identity id;
  id.cluster_id = std::move(cluster);
  id.secret = std::move(secret);
  id.role = std::move(role);
  id.rank = rank;
  return id;
}

inline std::chrono::steady_clock::time_point in(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}

/// Deterministic bytes that differ at every 8-byte word, so a misplaced slice shows.
inline bytes pattern(std::size_t n, std::uint64_t seed) {
  bytes v(n);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const std::uint64_t w = (i / 8 + seed + 1) * 0x9E3779B97F4A7C15ull;
    std::memcpy(v.data() + i, &w, 8);
  }
  for (; i < n; ++i)
    v[i] = static_cast<std::uint8_t>(seed + i);
  return v;
}

inline bytes to_bytes(const std::string& s) {
  return bytes(s.begin(), s.end());
}
inline std::string to_string(const std::vector<std::uint8_t>& b) {
  return std::string(b.begin(), b.end());
}

/// Messages from on_message, popped with a bounded wait.
class inbox {
 public:
  void push(message&& m) {
    {
      std::lock_guard<std::mutex> g(mu_);
      q_.push_back(std::move(m));
    }
    cv_.notify_all();
  }
  std::optional<message> pop(std::chrono::milliseconds timeout = long_wait) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_for(l, timeout, [&] { return !q_.empty(); })) return std::nullopt;
    auto m = std::move(q_.front());
    q_.pop_front();
    return m;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> g(mu_);
    return q_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<message> q_;
};

/// Opens and closes seen by a set of handlers.
class event_log {
 public:
  void opened(const connection_ptr& c) {
    {
      std::lock_guard<std::mutex> g(mu_);
      opens_.push_back(c);
    }
    cv_.notify_all();
  }
  void closed(const connection_ptr& c, const status& s) {
    {
      std::lock_guard<std::mutex> g(mu_);
      closes_.push_back({c, s});
    }
    cv_.notify_all();
  }
  bool wait_opens(std::size_t n, std::chrono::milliseconds timeout = long_wait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return opens_.size() >= n; });
  }
  bool wait_closes(std::size_t n, std::chrono::milliseconds timeout = long_wait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return closes_.size() >= n; });
  }
  std::size_t opens() const {
    std::lock_guard<std::mutex> g(mu_);
    return opens_.size();
  }
  std::size_t closes() const {
    std::lock_guard<std::mutex> g(mu_);
    return closes_.size();
  }
  connection_ptr open_at(std::size_t i) const {
    std::lock_guard<std::mutex> g(mu_);
    return opens_.at(i);
  }
  status close_status(std::size_t i) const {
    std::lock_guard<std::mutex> g(mu_);
    return closes_.at(i).second;
  }
  connection_ptr closed_at(std::size_t i) const {
    std::lock_guard<std::mutex> g(mu_);
    return closes_.at(i).first;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<connection_ptr> opens_;
  std::vector<std::pair<connection_ptr, status>> closes_;
};

/// Handlers that record into `log` and `box` (either may be null).
inline handlers recording(event_log* log, inbox* box) {
  handlers h;
  h.on_open = [log](const connection_ptr& c) {
    if (log) log->opened(c);
  };
  h.on_close = [log](const connection_ptr& c, const status& s) {
    if (log) log->closed(c, s);
  };
  h.on_message = [box](const connection_ptr&, message&& m) {
    if (box) box->push(std::move(m));
  };
  return h;
}

/// Handlers of an echo server: every message goes back unchanged on its connection.
inline handlers echoing(event_log* log) {
  handlers h = recording(log, nullptr);
  h.on_message = [](const connection_ptr& c, message&& m) { c->send(echo_of(std::move(m))); };
  return h;
}

/// Connects and waits (bounded) for the outcome.
inline result<connection_ptr> connect_sync(runtime& rt, std::uint16_t port, identity self, caps c,
                                           handlers h,
                                           std::chrono::milliseconds deadline = 5000ms) {
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  rt.connect("127.0.0.1", port, std::move(self), c, std::move(h), in(deadline),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  if (f.wait_for(long_wait) != std::future_status::ready)
    return status{errc::timeout, "test: connect() did not call back"};
  return f.get();
}

/// Connects as `self` to a TLS listener that must refuse it in the TLS handshake itself:
/// unauthenticated, promptly (not by the handshake timeout), nothing opened on the listener.
inline void expect_tls_refusal(std::uint16_t port, identity self, caps c,
                               const event_log& server_log) {
  runtime rt;
  const auto t0 = std::chrono::steady_clock::now();
  auto conn = connect_sync(rt, port, std::move(self), c, recording(nullptr, nullptr));
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error().code(), errc::unauthenticated) << conn.error().to_string();
  EXPECT_NE(conn.error().message().find("TLS handshake failed"), std::string::npos)
      << conn.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << "not a handshake timeout";
  EXPECT_EQ(server_log.opens(), 0u);
}

/// An outgoing message whose on_sent fulfils the returned future.
inline std::pair<outgoing, std::future<status>> tracked(outgoing o) {
  auto p = std::make_shared<std::promise<status>>();
  auto f = p->get_future();
  o.on_sent = [p](const status& s) { p->set_value(s); };
  return {std::move(o), std::move(f)};
}

// ------------------------------------------------------------------ raw peers

struct raw_frame {
  fr::frame_header h;
  bytes meta;
  bytes payload;
};

/// A blocking POSIX socket with bounded reads; the test's stand-in for a hostile peer.
class raw_socket {
 public:
  explicit raw_socket(int fd = -1) : fd_(fd) {}
  raw_socket(raw_socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  raw_socket& operator=(raw_socket&& o) noexcept {
    close();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  ~raw_socket() { close(); }

  static raw_socket connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return raw_socket{};
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return raw_socket{fd};
  }

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool send_bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::uint8_t*>(p);
    while (n) {
      const ssize_t k = ::send(fd_, b, n, MSG_NOSIGNAL);
      if (k <= 0) {
        if (k < 0 && errno == EINTR) continue;
        return false;
      }
      b += k;
      n -= static_cast<std::size_t>(k);
    }
    return true;
  }
  bool send_bytes(const bytes& b) { return send_bytes(b.data(), b.size()); }

  bool send_frame(fr::frame_header h, const bytes& meta = {}, const bytes& payload = {}) {
    h.meta_size = static_cast<std::uint32_t>(meta.size());
    const auto hb = fr::encode_frame_header(h);
    return send_bytes(hb.data(), hb.size()) && send_bytes(meta) && send_bytes(payload);
  }

  /// A whole transport frame (FIRST|LAST, no payload) with the given meta.
  bool send_control(std::uint8_t type, const bytes& meta) {
    fr::frame_header h;
    h.type = type;
    h.flags = fr::frame_flags::first | fr::frame_flags::last;
    return send_frame(h, meta);
  }

  bool recv_exact(void* p, std::size_t n, std::chrono::milliseconds timeout = long_wait) {
    auto* b = static_cast<std::uint8_t*>(p);
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pf{fd_, POLLIN, 0};
      if (::poll(&pf, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t k = ::recv(fd_, b, n, 0);
      if (k <= 0) {
        if (k < 0 && errno == EINTR) continue;
        return false;
      }
      b += k;
      n -= static_cast<std::size_t>(k);
    }
    return true;
  }

  std::optional<raw_frame> read_frame(std::chrono::milliseconds timeout = long_wait) {
    fr::frame_bytes hb;
    if (!recv_exact(hb.data(), hb.size(), timeout)) return std::nullopt;
    auto h = fr::decode_frame_header(hb.data(), hb.size(), fr::frame_caps{});
    if (!h) return std::nullopt;
    raw_frame f{*h, bytes(h->meta_size), bytes(h->slice_size)};
    if (!recv_exact(f.meta.data(), f.meta.size(), timeout)) return std::nullopt;
    if (!recv_exact(f.payload.data(), f.payload.size(), timeout)) return std::nullopt;
    return f;
  }

  /// Reads the next frame that is not a heartbeat.
  std::optional<raw_frame> read_non_heartbeat(std::chrono::milliseconds timeout = long_wait) {
    for (;;) {
      auto f = read_frame(timeout);
      if (!f || f->h.type != fr::frame_type::heartbeat) return f;
    }
  }

  /// Reads (and keeps) whatever arrives until the peer closes: true if it closed in time.
  bool wait_closed(std::chrono::milliseconds timeout = long_wait) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::uint8_t buf[4096];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pf{fd_, POLLIN, 0};
      if (::poll(&pf, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t k = ::recv(fd_, buf, sizeof buf, 0);
      if (k == 0) return true;
      if (k < 0) {
        if (errno == EINTR) continue;
        return true;  // reset
      }
      drained.insert(drained.end(), buf, buf + k);
    }
  }

  /// The GOODBYE among the bytes wait_closed() drained, if any.
  std::optional<handshake::goodbye> drained_goodbye() const {
    std::size_t at = 0;
    while (at + fr::frame_header_size <= drained.size()) {
      auto h = fr::decode_frame_header(drained.data() + at, drained.size() - at, fr::frame_caps{});
      if (!h) return std::nullopt;
      at += fr::frame_header_size;
      if (at + h->meta_size + h->slice_size > drained.size()) return std::nullopt;
      if (h->type == fr::frame_type::goodbye) {
        auto g = handshake::decode_goodbye(drained.data() + at, h->meta_size);
        if (g) return *g;
        return std::nullopt;
      }
      at += h->meta_size + h->slice_size;
    }
    return std::nullopt;
  }

  bytes drained;

 private:
  int fd_;
};

/// The connector's half of the handshake, done by hand (after `challenge` when the caller has
/// read it already).
inline ::testing::AssertionResult raw_authenticate(
    raw_socket& s, const identity& self, std::optional<raw_frame> challenge = std::nullopt) {
  auto c = challenge ? std::move(challenge) : s.read_frame();
  if (!c || c->h.type != fr::frame_type::challenge)
    return ::testing::AssertionFailure() << "no CHALLENGE";
  auto ch = handshake::decode_challenge(c->meta.data(), c->meta.size());
  if (!ch) return ::testing::AssertionFailure() << ch.error().to_string();
  auto nb = handshake::random_nonce();
  auto mac =
      handshake::hello_mac(self.secret, self.cluster_id, self.role, self.rank, ch->nonce_a, *nb);
  if (!s.send_control(
          fr::frame_type::hello,
          handshake::encode(handshake::hello{self.cluster_id, self.role, self.rank, *nb, *mac})))
    return ::testing::AssertionFailure() << "cannot send HELLO";
  auto w = s.read_frame();
  if (!w || w->h.type != fr::frame_type::welcome)
    return ::testing::AssertionFailure() << "no WELCOME";
  auto wm = handshake::decode_welcome(w->meta.data(), w->meta.size());
  if (!wm) return ::testing::AssertionFailure() << wm.error().to_string();
  auto expected =
      handshake::welcome_mac(self.secret, self.cluster_id, wm->role, wm->rank, *nb, ch->nonce_a);
  if (!handshake::equal(*expected, wm->mac_a))
    return ::testing::AssertionFailure() << "WELCOME MAC mismatch";
  return ::testing::AssertionSuccess();
}

/// A listening POSIX socket on 127.0.0.1 (port 0 picks one).
class raw_listener {
 public:
  explicit raw_listener(bool do_listen = true) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (do_listen) ::listen(fd_, 16);
  }
  ~raw_listener() { close(); }
  raw_listener(const raw_listener&) = delete;
  raw_listener& operator=(const raw_listener&) = delete;

  std::uint16_t port() const { return port_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  raw_socket accept(std::chrono::milliseconds timeout = long_wait) {
    pollfd pf{fd_, POLLIN, 0};
    if (::poll(&pf, 1, static_cast<int>(timeout.count())) <= 0) return raw_socket{};
    return raw_socket{::accept(fd_, nullptr, nullptr)};
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

/// A port on 127.0.0.1 with nobody listening (bound and released at once).
inline std::uint16_t unused_port() {
  raw_listener l(false);
  return l.port();
}

}  // namespace kvactor::net::testing
