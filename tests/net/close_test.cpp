// Close semantics: on_close exactly once on both ends with the reason, queued sends failing
// with the closing status, sends after close, runtime destruction with open connections,
// frozen peers and connects in flight.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "net_test_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

constexpr std::uint8_t app_type = 40;

caps close_caps() {
  caps c;
  c.handshake_timeout = 5000ms;
  c.peer_timeout = 20000ms;  // raw peers here never send heartbeats
  return c;
}

outgoing message_of(const bytes& payload, std::uint64_t id = 0) {
  outgoing o;
  o.type = app_type;
  o.id = id;
  o.payload = payload.data();
  o.payload_size = payload.size();
  return o;
}

/// Counts on_sent calls per message; the test checks "exactly once" after the runtime is gone.
struct sent_counter {
  explicit sent_counter(std::size_t n) : calls(n), codes(n) {}
  outgoing track(outgoing o, std::size_t i) {
    o.on_sent = [this, i](const status& s) {
      codes[i] = s.code();
      ++calls[i];
      std::lock_guard<std::mutex> g(mu);
      ++total;
      cv.notify_all();
    };
    return o;
  }
  bool wait_all(std::chrono::milliseconds timeout = long_wait) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, timeout, [&] { return total >= calls.size(); });
  }
  std::vector<std::atomic<int>> calls;
  std::vector<std::atomic<errc>> codes;
  std::mutex mu;
  std::condition_variable cv;
  std::size_t total = 0;
};

/// A server runtime and a client runtime with one authenticated connection between them.
class CloseConnected : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), close_caps(),
                              recording(&server_log, nullptr));
    ASSERT_TRUE(l);
    server = *l;
    auto conn = connect_sync(rt, server->port(), ident("worker", 0), close_caps(),
                             recording(&client_log, nullptr));
    ASSERT_TRUE(conn);
    c = *conn;
  }

  event_log server_log, client_log;
  runtime server_rt, rt;
  std::shared_ptr<net::listener> server;
  connection_ptr c;
};

TEST_F(CloseConnected, OrderlyCloseRunsOnCloseOnceOnBothEnds) {
  c->close(status::ok());
  EXPECT_FALSE(c->is_open());
  c->close(status{errc::internal, "again"});  // idempotent
  ASSERT_TRUE(client_log.wait_closes(1));
  ASSERT_TRUE(server_log.wait_closes(1));
  EXPECT_TRUE(client_log.close_status(0).is_ok());
  EXPECT_TRUE(server_log.close_status(0).is_ok()) << server_log.close_status(0).to_string();
  EXPECT_EQ(client_log.closed_at(0), c);
  // Nothing more arrives, whatever else happens.
  c->close(status::ok());
  EXPECT_FALSE(client_log.wait_closes(2, 200ms));
  EXPECT_EQ(server_log.closes(), 1u);
}

TEST_F(CloseConnected, TheReasonReachesThePeer) {
  c->close(status{errc::invalid_argument, "bye now"});
  ASSERT_TRUE(server_log.wait_closes(1));
  const auto st = server_log.close_status(0);
  EXPECT_EQ(st.code(), errc::invalid_argument);
  EXPECT_NE(st.message().find("bye now"), std::string::npos) << st.to_string();
  ASSERT_TRUE(client_log.wait_closes(1));
  EXPECT_EQ(client_log.close_status(0).code(), errc::invalid_argument);
}

// A runtime that shuts down because something broke tells its peers why (a server that stops
// after its cluster lost a node), instead of an orderly goodbye.
TEST_F(CloseConnected, ShutdownWithAReasonTellsThePeers) {
  ASSERT_TRUE(server_log.wait_opens(1));
  server_rt.shutdown(status{errc::peer_lost, "it stopped: lost worker 1"});
  ASSERT_TRUE(client_log.wait_closes(1));
  const auto st = client_log.close_status(0);
  EXPECT_EQ(st.code(), errc::peer_lost) << st.to_string();
  EXPECT_EQ(st.message(), "peer closed the connection: it stopped: lost worker 1");
  ASSERT_TRUE(server_log.wait_closes(1));
  EXPECT_EQ(server_log.close_status(0).code(), errc::peer_lost);
}

TEST(Close, QueuedSendsFailWithTheClosingStatus) {
  // The peer authenticates and then stops reading, so big sends pile up in the queue.
  constexpr std::size_t n = 4;
  sent_counter sent(n);
  const auto big = pattern(32 << 20, 1);
  event_log server_log;
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), close_caps(),
                            recording(&server_log, nullptr));
  ASSERT_TRUE(l);
  auto peer = raw_socket::connect_to((*l)->port());
  ASSERT_TRUE(raw_authenticate(peer, ident("worker", 0)));
  ASSERT_TRUE(server_log.wait_opens(1));
  auto conn = server_log.open_at(0);
  for (std::size_t i = 0; i < n; ++i)
    conn->send(sent.track(message_of(big, i), i));
  conn->close(status{errc::shut_down, "test closes"});
  ASSERT_TRUE(sent.wait_all());
  int failed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (sent.codes[i].load() == errc::shut_down) ++failed;
    EXPECT_TRUE(sent.codes[i].load() == errc::shut_down || sent.codes[i].load() == errc::ok);
  }
  EXPECT_GE(failed, 3) << "at most one 32 MiB message fits the kernel's buffers";
  ASSERT_TRUE(server_log.wait_closes(1));
  EXPECT_EQ(server_log.close_status(0).code(), errc::shut_down);
  // A send after close fails at once, with the same status.
  auto [o, f] = tracked(message_of(big));
  conn->send(std::move(o));
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  const auto st = f.get();
  EXPECT_EQ(st.code(), errc::shut_down);
  EXPECT_NE(st.message().find("test closes"), std::string::npos) << st.to_string();
  server_rt.shutdown();
  for (std::size_t i = 0; i < n; ++i)
    EXPECT_EQ(sent.calls[i].load(), 1) << "message " << i;
}

TEST(Close, MessagesSentBeforeCloseReportOk) {
  // close() after the echo came back: everything sent was ok, nothing is failed twice.
  inbox box;
  const auto p = pattern(1000, 3);
  sent_counter sent(10);
  runtime server_rt, rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), close_caps(), echoing(nullptr));
  ASSERT_TRUE(l);
  auto c =
      connect_sync(rt, (*l)->port(), ident("worker", 0), close_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c);
  for (std::size_t i = 0; i < 10; ++i)
    (*c)->send(sent.track(message_of(p, i), i));
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(box.pop());
  (*c)->close(status::ok());
  ASSERT_TRUE(sent.wait_all());
  for (std::size_t i = 0; i < 10; ++i)
    EXPECT_EQ(sent.codes[i].load(), errc::ok);
}

TEST(Close, RuntimeDestructionClosesOpenConnections) {
  constexpr std::size_t conns = 3;
  const auto big = pattern(16 << 20, 2);
  sent_counter sent(conns * 4);
  event_log server_log, client_log;
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), close_caps(),
                            recording(&server_log, nullptr));
  ASSERT_TRUE(l);
  std::vector<connection_ptr> kept;
  {
    runtime rt(2);
    for (std::size_t k = 0; k < conns; ++k) {
      auto c = connect_sync(rt, (*l)->port(), ident("worker", static_cast<std::int64_t>(k)),
                            close_caps(), recording(&client_log, nullptr));
      ASSERT_TRUE(c);
      for (std::size_t i = 0; i < 4; ++i)
        (*c)->send(sent.track(message_of(big, i), k * 4 + i));
      kept.push_back(*c);
    }
  }  // ~runtime with sends in flight
  EXPECT_EQ(client_log.closes(), conns) << "on_close ran for each before ~runtime returned";
  for (std::size_t k = 0; k < conns; ++k)
    EXPECT_TRUE(client_log.close_status(k).is_ok());
  EXPECT_EQ(sent.total, conns * 4) << "every on_sent ran before ~runtime returned";
  for (std::size_t i = 0; i < conns * 4; ++i)
    EXPECT_EQ(sent.calls[i].load(), 1);
  ASSERT_TRUE(server_log.wait_closes(conns));
  for (std::size_t k = 0; k < conns; ++k)
    EXPECT_TRUE(server_log.close_status(k).is_ok())
        << "the GOODBYE followed the write in flight: " << server_log.close_status(k).to_string();
  // Connections outlive their runtime harmlessly.
  for (auto& c : kept) {
    EXPECT_FALSE(c->is_open());
    auto [o, f] = tracked(message_of(big));
    c->send(std::move(o));
    ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
    EXPECT_FALSE(f.get().is_ok());
    c->close(status::ok());
  }
}

TEST(Close, RuntimeDestructionDoesNotHangOnAFrozenPeer) {
  event_log server_log;
  sent_counter sent(2);
  const auto big = pattern(64 << 20, 1);
  auto server_rt = std::make_unique<runtime>();
  auto l = server_rt->listen("127.0.0.1", 0, ident("server", 0), close_caps(),
                             recording(&server_log, nullptr));
  ASSERT_TRUE(l);
  auto peer = raw_socket::connect_to((*l)->port());
  ASSERT_TRUE(raw_authenticate(peer, ident("worker", 0)));
  ASSERT_TRUE(server_log.wait_opens(1));
  server_log.open_at(0)->send(sent.track(message_of(big, 0), 0));
  server_log.open_at(0)->send(sent.track(message_of(big, 1), 1));
  const auto t0 = std::chrono::steady_clock::now();
  server_rt.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5000ms);
  EXPECT_EQ(server_log.closes(), 1u);
  EXPECT_EQ(sent.total, 2u);
  EXPECT_EQ(sent.codes[1].load(), errc::shut_down);
}

TEST(Close, ConnectInFlightEndsWithShutDown) {
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  std::atomic<int> calls{0};
  auto rt = std::make_unique<runtime>();
  rt->connect("127.0.0.1", unused_port(), ident("worker", 0), close_caps(), {}, in(60000ms),
              [p, &calls](result<connection_ptr> r) {
                ++calls;
                p->set_value(std::move(r));
              });
  rt.reset();
  ASSERT_EQ(f.wait_for(0ms), std::future_status::ready) << "done ran before ~runtime returned";
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::shut_down) << r.error().to_string();
  EXPECT_EQ(calls.load(), 1);
}

TEST(Close, ShutdownEndsHandshakesAndRefusesNewWork) {
  runtime rt;
  raw_listener silent;  // accepts (in the kernel) but never sends a CHALLENGE
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  rt.connect("127.0.0.1", silent.port(), ident("worker", 0), close_caps(), {}, in(5000ms),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  auto s = silent.accept();
  ASSERT_TRUE(s.valid());
  rt.shutdown();
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  EXPECT_EQ(f.get().error().code(), errc::shut_down);
  EXPECT_TRUE(s.wait_closed());
  auto l = rt.listen("127.0.0.1", 0, ident("server", 0), close_caps(), {});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code(), errc::shut_down);
  auto c = connect_sync(rt, silent.port(), ident("worker", 0), close_caps(), {});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::shut_down);
}

TEST(Close, HandshakeTimeoutOnTheConnectorSide) {
  runtime rt;
  raw_listener silent;
  caps c = close_caps();
  c.handshake_timeout = 300ms;
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  rt.connect("127.0.0.1", silent.port(), ident("worker", 0), c, {}, in(5000ms),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  auto s = silent.accept();
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::timeout) << r.error().to_string();
}

TEST(Close, FrozenServerIsDetectedByTheClient) {
  // The acceptor completes the handshake and then freezes (sends nothing, reads nothing).
  raw_listener fake;
  event_log log;
  runtime rt;
  caps c = close_caps();
  c.heartbeat_interval = 50ms;
  c.peer_timeout = 300ms;
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  const identity me = ident("worker", 0);
  rt.connect("127.0.0.1", fake.port(), me, c, recording(&log, nullptr), in(5000ms),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  auto s = fake.accept();
  ASSERT_TRUE(s.valid());
  handshake::nonce na{};
  na.fill(7);
  ASSERT_TRUE(s.send_control(
      fr::frame_type::challenge,
      handshake::encode(handshake::challenge{handshake::protocol_version, me.cluster_id, na})));
  auto hf = s.read_frame();
  ASSERT_TRUE(hf);
  auto hello = handshake::decode_hello(hf->meta.data(), hf->meta.size());
  ASSERT_TRUE(hello);
  auto mac = handshake::welcome_mac(me.secret, me.cluster_id, "server", 0, hello->nonce_b, na);
  ASSERT_TRUE(s.send_control(fr::frame_type::welcome,
                             handshake::encode(handshake::welcome{"server", 0, *mac})));
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  auto conn = f.get();
  ASSERT_TRUE(conn) << conn.error().to_string();
  EXPECT_EQ((*conn)->peer().role, "server");
  ASSERT_TRUE(log.wait_closes(1));
  EXPECT_EQ(log.close_status(0).code(), errc::timeout);
  EXPECT_EQ(log.close_status(0).message(), "no heartbeat for 300 ms");
}

}  // namespace
}  // namespace kvactor::net
