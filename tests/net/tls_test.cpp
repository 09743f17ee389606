// TLS 1.3 between nodes (identity::tls): the same messages as plaintext, both ways and sliced;
// a wrong secret, a plaintext peer and a TLS peer of a plaintext listener refused at once with
// typed errors; and, through a small TCP proxy, payload bytes that never appear on the wire and
// a byte flipped in flight that closes the connection instead of reaching the application.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "net_test_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

constexpr std::uint8_t msg_type = 20;

identity tls_ident(std::string role, std::int64_t rank, std::string secret = "s3cret") {
  identity id = ident(std::move(role), rank, std::move(secret));
  id.tls = true;
  return id;
}

caps test_caps() {
  caps c;
  c.handshake_timeout = 5000ms;
  return c;
}

outgoing make_message(std::uint64_t id, const bytes& payload, const std::string& meta) {
  outgoing o;
  o.type = msg_type;
  o.flags = static_cast<std::uint16_t>(id & 0x3fff);
  o.id = id;
  o.stream = id % 3;
  o.meta = to_bytes(meta);
  o.payload = payload.data();
  o.payload_size = payload.size();
  return o;
}

// A TCP proxy on 127.0.0.1 for one connection: forwards both ways, keeps what the connector
// sent, and can flip one byte of the next chunk the connector sends.
class proxy {
 public:
  explicit proxy(std::uint16_t upstream) : upstream_(upstream) {
    thread_ = std::thread([this] { run(); });
  }
  ~proxy() {
    stop_ = true;
    thread_.join();
  }
  std::uint16_t port() const { return lst_.port(); }
  /// The next chunk from the connector gets byte `at` (or its last) inverted.
  void flip_next(std::size_t at) {
    flip_at_ = at;
    flip_ = true;
  }
  bool flipped() const { return done_flip_; }
  bytes upstream_bytes() {
    std::lock_guard<std::mutex> g(mu_);
    return seen_;
  }

 private:
  void run() {
    raw_socket down = lst_.accept(long_wait);
    if (!down.valid()) return;
    raw_socket up = raw_socket::connect_to(upstream_);
    if (!up.valid()) return;
    std::vector<std::uint8_t> buf(256 * 1024);
    while (!stop_) {
      pollfd pf[2] = {{down.fd(), POLLIN, 0}, {up.fd(), POLLIN, 0}};
      if (::poll(pf, 2, 20) <= 0) continue;  // 20 ms: to notice stop_
      for (int i = 0; i < 2; ++i) {
        if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        raw_socket& from = i == 0 ? down : up;
        raw_socket& to = i == 0 ? up : down;
        const ssize_t n = ::recv(from.fd(), buf.data(), buf.size(), 0);
        if (n <= 0) return;  // either end closed: so does the proxy (both sockets)
        if (i == 0) {
          if (flip_.exchange(false)) {
            buf[std::min<std::size_t>(flip_at_, static_cast<std::size_t>(n) - 1)] ^= 0xff;
            done_flip_ = true;
          }
          std::lock_guard<std::mutex> g(mu_);
          seen_.insert(seen_.end(), buf.data(), buf.data() + n);
        }
        if (!to.send_bytes(buf.data(), static_cast<std::size_t>(n))) return;
      }
    }
  }

  raw_listener lst_;
  const std::uint16_t upstream_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> flip_{false};
  std::atomic<std::size_t> flip_at_{0};
  std::atomic<bool> done_flip_{false};
  std::mutex mu_;
  bytes seen_;
  std::thread thread_;
};

class TlsEcho : public ::testing::TestWithParam<bool> {};

// Every size through the echo server and back (so both directions), the large ones in 1 MiB
// slices, interleaved on three streams: TLS delivers exactly what plaintext does.
TEST_P(TlsEcho, SameMessagesBothWaysAsPlaintext) {
  const bool tls = GetParam();
  const std::vector<std::size_t> sizes{0, 1, 4095, 70000, (1 << 20) + 3, 9 << 20};
  std::vector<bytes> payloads;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    payloads.push_back(pattern(sizes[i], i + 7));
  event_log server_log;
  inbox box;
  runtime server_rt{2};
  identity server_id = ident("server", 0);
  server_id.tls = tls;
  auto l = server_rt.listen("127.0.0.1", 0, server_id, test_caps(), echoing(&server_log));
  ASSERT_TRUE(l) << l.error().to_string();
  runtime rt;
  identity self = ident("worker", 3);
  self.tls = tls;
  auto c = connect_sync(rt, (*l)->port(), self, test_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ((*c)->peer().role, "server");  // the HMAC handshake still ran (inside TLS)
  ASSERT_TRUE(server_log.wait_opens(1));
  EXPECT_EQ(server_log.open_at(0)->peer().rank, 3);
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < sizes.size(); ++i)
      (*c)->send(make_message(i, payloads[i], "meta-" + std::to_string(i)));
  std::vector<int> seen(sizes.size(), 0);
  for (std::size_t k = 0; k < 3 * sizes.size(); ++k) {
    auto m = box.pop();
    ASSERT_TRUE(m) << "echo " << k << " missing";
    ASSERT_LT(m->id, sizes.size());
    const auto& want = payloads[m->id];
    EXPECT_EQ(to_string(m->meta), "meta-" + std::to_string(m->id));
    ASSERT_EQ(m->payload_size, want.size());
    if (!want.empty()) {
      EXPECT_EQ(std::memcmp(m->payload_data, want.data(), want.size()), 0);
    }
    ++seen[m->id];
  }
  EXPECT_EQ(seen, std::vector<int>(sizes.size(), 3));
  (*c)->close(status::ok());
  ASSERT_TRUE(server_log.wait_closes(1));
  EXPECT_TRUE(server_log.close_status(0).is_ok()) << server_log.close_status(0).to_string();
}

INSTANTIATE_TEST_SUITE_P(PlainAndTls, TlsEcho, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "tls" : "plain"; });

// A connection closed while large messages stream in: a socket read that completed just
// before the close must not be decrypted afterwards into memory the receiver has released
// (its payload destination, freed in on_close, and the connection's read buffer). Under
// AddressSanitizer such a write is a heap-use-after-free; it was seen in a cluster test.
TEST(Tls, CloseWhileMessagesStreamInTouchesNoReleasedMemory) {
  const bytes big = pattern(4 << 20, 3);
  for (int round = 0; round < 12; ++round) {
    struct receiver {
      std::mutex mu;
      std::unique_ptr<std::uint8_t[]> dest{new std::uint8_t[4 << 20]};
      std::condition_variable cv;
      int messages = 0;
      int after_close = 0;
      bool closed = false;
    };
    auto r = std::make_shared<receiver>();
    event_log server_log;
    handlers h = recording(&server_log, nullptr);
    h.payload_destination = [r](const connection_ptr&, const message_head&) -> void* {
      std::lock_guard<std::mutex> g(r->mu);
      return r->dest.get();
    };
    h.on_message = [r](const connection_ptr&, message&&) {
      {
        std::lock_guard<std::mutex> g(r->mu);
        if (r->closed) ++r->after_close;
        ++r->messages;
      }
      r->cv.notify_all();
    };
    auto log_close = h.on_close;
    h.on_close = [r, log_close](const connection_ptr& c, const status& s) {
      {
        std::lock_guard<std::mutex> g(r->mu);
        r->closed = true;
        r->dest.reset();  // from here on the transport may not write into it
      }
      log_close(c, s);
    };
    runtime server_rt{2};  // a read may complete on one thread while the close runs on another
    auto l = server_rt.listen("127.0.0.1", 0, tls_ident("server", 0), test_caps(), h);
    ASSERT_TRUE(l) << l.error().to_string();
    runtime rt;
    event_log client_log;
    auto c = connect_sync(rt, (*l)->port(), tls_ident("worker", 0), test_caps(),
                          recording(&client_log, nullptr));
    ASSERT_TRUE(c) << c.error().to_string();
    for (std::uint64_t i = 0; i < 8; ++i)
      (*c)->send(make_message(i, big, "m"));
    {
      std::unique_lock<std::mutex> g(r->mu);
      ASSERT_TRUE(r->cv.wait_for(g, long_wait, [&] { return r->messages > round % 3; }));
    }
    server_log.open_at(0)->close(status::ok());  // from this thread, mid-stream
    ASSERT_TRUE(server_log.wait_closes(1));
    ASSERT_TRUE(client_log.wait_closes(1));  // the GOODBYE arrived: the sender stopped
    std::lock_guard<std::mutex> g(r->mu);
    EXPECT_EQ(r->after_close, 0);
    EXPECT_GT(r->messages, round % 3);
  }
}

// A peer with another secret fails the TLS handshake itself (the PSK binder), promptly.
TEST(Tls, WrongSecretFailsTheTlsHandshake) {
  event_log server_log;
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, tls_ident("server", 0), test_caps(),
                            recording(&server_log, nullptr));
  ASSERT_TRUE(l) << l.error().to_string();
  expect_tls_refusal((*l)->port(), tls_ident("worker", 0, "another-secret"), test_caps(),
                     server_log);
}

// Plaintext connector, TLS listener: refused at once, the reason names the setting.
TEST(Tls, PlaintextPeerOfATlsListenerIsRefused) {
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, tls_ident("server", 0), test_caps(), handlers{});
  ASSERT_TRUE(l) << l.error().to_string();
  runtime rt;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = connect_sync(rt, (*l)->port(), ident("worker", 0), test_caps(), handlers{});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::protocol_error) << c.error().to_string();
  EXPECT_NE(c.error().message().find("requires TLS"), std::string::npos) << c.error().to_string();
  EXPECT_NE(c.error().message().find("KVACTOR_TLS"), std::string::npos) << c.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << "not a handshake timeout";
}

// TLS connector, plaintext listener: refused at once; the listener hears why (GOODBYE).
TEST(Tls, TlsPeerOfAPlaintextListenerIsRefused) {
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), test_caps(), handlers{});
  ASSERT_TRUE(l) << l.error().to_string();
  runtime rt;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = connect_sync(rt, (*l)->port(), tls_ident("worker", 0), test_caps(), handlers{});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::protocol_error) << c.error().to_string();
  EXPECT_NE(c.error().message().find("does not use TLS"), std::string::npos)
      << c.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms) << "not a handshake timeout";
  // A raw plaintext connector sees the TLS frame where a CHALLENGE would be.
  runtime tls_rt;
  auto tl = tls_rt.listen("127.0.0.1", 0, tls_ident("server", 0), test_caps(), handlers{});
  ASSERT_TRUE(tl);
  raw_socket s = raw_socket::connect_to((*tl)->port());
  ASSERT_TRUE(s.valid());
  auto f = s.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->h.type, fr::frame_type::tls);
}

struct proxied : ::testing::Test {
  event_log server_log;
  inbox server_box;
  runtime server_rt{2};
  std::shared_ptr<listener> server;

  void SetUp() override {
    auto l = server_rt.listen("127.0.0.1", 0, tls_ident("server", 0), test_caps(),
                              recording(&server_log, &server_box));
    ASSERT_TRUE(l) << l.error().to_string();
    server = *l;
  }
};

// What the connector sends is ciphertext: no 32-byte run of the payload is on the wire.
TEST_F(proxied, PayloadNeverAppearsOnTheWire) {
  const bytes payload = pattern(256 * 1024, 42);
  proxy p(server->port());
  runtime rt;
  caps c_caps = test_caps();
  c_caps.shared_memory = false;  // co-located, the payload would not travel on this wire at all
  auto c = connect_sync(rt, p.port(), tls_ident("worker", 0), c_caps, handlers{});
  ASSERT_TRUE(c) << c.error().to_string();
  (*c)->send(make_message(1, payload, "clear-meta-text"));
  auto m = server_box.pop();
  ASSERT_TRUE(m);
  ASSERT_EQ(m->payload_size, payload.size());
  EXPECT_EQ(std::memcmp(m->payload_data, payload.data(), payload.size()), 0);
  const bytes wire = p.upstream_bytes();
  EXPECT_GT(wire.size(), payload.size());
  for (std::size_t at = 0; at + 32 <= payload.size(); at += 4096)
    ASSERT_EQ(
        std::search(wire.begin(), wire.end(), payload.begin() + at, payload.begin() + at + 32),
        wire.end())
        << "payload bytes at " << at << " travel in the clear";
  const std::string meta = "clear-meta-text";
  EXPECT_EQ(std::search(wire.begin(), wire.end(), meta.begin(), meta.end()), wire.end());
}

// A byte inverted in flight after the handshake: the receiver closes (unauthenticated) and
// delivers nothing altered.
TEST_F(proxied, ByteFlippedInFlightClosesInsteadOfDelivering) {
  const bytes payload = pattern(64 * 1024, 9);
  proxy p(server->port());
  event_log client_log;
  runtime rt;
  auto c = connect_sync(rt, p.port(), tls_ident("worker", 0), test_caps(),
                        recording(&client_log, nullptr));
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_TRUE(server_log.wait_opens(1));
  // A message first, to show the channel works through the proxy.
  (*c)->send(make_message(1, payload, "before"));
  auto m = server_box.pop();
  ASSERT_TRUE(m);
  EXPECT_EQ(std::memcmp(m->payload_data, payload.data(), payload.size()), 0);
  p.flip_next(1000);  // inside the next record's ciphertext (a heartbeat's or the message's)
  (*c)->send(make_message(2, payload, "after"));
  ASSERT_TRUE(server_log.wait_closes(1));
  EXPECT_TRUE(p.flipped());
  const status why = server_log.close_status(0);
  EXPECT_EQ(why.code(), errc::unauthenticated) << why.to_string();
  EXPECT_NE(why.message().find("TLS"), std::string::npos) << why.to_string();
  EXPECT_EQ(server_box.size(), 0u) << "a message arrived after the flip";
  // The sender learns too (the proxy passes the close on).
  ASSERT_TRUE(client_log.wait_closes(1));
  EXPECT_FALSE(client_log.close_status(0).is_ok());
}

}  // namespace
}  // namespace kvactor::net
