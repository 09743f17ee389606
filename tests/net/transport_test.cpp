// Loopback transport: echo round trips of every size through both payload paths, many
// messages, several connections, per-stream order under random priorities, and a small
// urgent message overtaking a 64 MiB one. Also identities, heartbeats and connect retries.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "net_test_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

constexpr std::uint8_t msg_type = 20;

caps test_caps() {
  caps c;
  c.handshake_timeout = 5000ms;
  return c;
}

struct echo_fixture : ::testing::Test {
  // Declared before the runtime: handlers may run until the runtime is destroyed.
  event_log server_log;
  runtime server_rt{2};
  std::shared_ptr<listener> server;

  void SetUp() override {
    auto l =
        server_rt.listen("127.0.0.1", 0, ident("server", 0), test_caps(), echoing(&server_log));
    ASSERT_TRUE(l) << l.error().to_string();
    server = *l;
  }
};

outgoing make_message(std::uint64_t id, const bytes& payload, const std::string& meta,
                      std::uint64_t stream = 0, std::int32_t priority = 0) {
  outgoing o;
  o.type = msg_type;
  o.flags = static_cast<std::uint16_t>(id & 0x3fff);
  o.id = id;
  o.stream = stream;
  o.priority = priority;
  o.meta = to_bytes(meta);
  o.payload = payload.data();
  o.payload_size = payload.size();
  return o;
}

::testing::AssertionResult same_payload(const message& m, const bytes& want) {
  if (m.payload_size != want.size())
    return ::testing::AssertionFailure() << "size " << m.payload_size << " != " << want.size();
  if (want.empty()) return ::testing::AssertionSuccess();
  if (!m.payload_data) return ::testing::AssertionFailure() << "null payload";
  if (std::memcmp(m.payload_data, want.data(), want.size()) != 0)
    return ::testing::AssertionFailure() << "payload bytes differ";
  return ::testing::AssertionSuccess();
}

TEST_F(echo_fixture, EchoesEverySizeThroughThePool) {
  // Payloads first: they must outlive the runtime (valid until on_sent, which is not awaited).
  const std::vector<std::size_t> sizes{0, 1, 1 << 20, 64 << 20};
  std::vector<bytes> payloads;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    payloads.push_back(pattern(sizes[i], i));
  inbox box;
  runtime rt;
  auto c =
      connect_sync(rt, server->port(), ident("worker", 3), test_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c) << c.error().to_string();
  for (std::size_t i = 0; i < sizes.size(); ++i)
    (*c)->send(make_message(i, payloads[i], "meta-" + std::to_string(i)));
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto m = box.pop();
    ASSERT_TRUE(m) << "no echo " << i;
    EXPECT_EQ(m->type, msg_type);
    EXPECT_EQ(m->id, i);
    EXPECT_EQ(m->flags, i & 0x3fff);
    EXPECT_EQ(to_string(m->meta), "meta-" + std::to_string(i));
    EXPECT_TRUE(same_payload(*m, payloads[i])) << "size " << sizes[i];
    if (sizes[i]) {
      ASSERT_TRUE(m->payload_buffer) << "pooled";
      EXPECT_EQ(m->payload_buffer->data(), m->payload_data);
      EXPECT_GE(m->payload_buffer->capacity(), sizes[i]);
    } else {
      EXPECT_FALSE(m->payload_buffer);
    }
  }
}

TEST_F(echo_fixture, EchoesEverySizeIntoPayloadDestination) {
  const std::vector<std::size_t> sizes{0, 1, 1 << 20, 64 << 20};
  std::vector<bytes> payloads, landing;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    payloads.push_back(pattern(sizes[i], 100 + i));
    landing.emplace_back(sizes[i]);
  }
  std::atomic<int> asked{0};
  inbox box;
  runtime rt;
  handlers h = recording(nullptr, &box);
  h.payload_destination = [&](const connection_ptr&, const message_head& head) -> void* {
    ++asked;
    EXPECT_EQ(head.type, msg_type);
    EXPECT_EQ(to_string(*head.meta), "m" + std::to_string(head.id)) << "meta is known";
    EXPECT_EQ(head.payload_size, landing.at(head.id).size());
    return landing.at(head.id).data();
  };
  auto c = connect_sync(rt, server->port(), ident("worker", 3), test_caps(), h);
  ASSERT_TRUE(c) << c.error().to_string();
  for (std::size_t i = 0; i < sizes.size(); ++i)
    (*c)->send(make_message(i, payloads[i], "m" + std::to_string(i)));
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto m = box.pop();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->id, i);
    EXPECT_FALSE(m->payload_buffer) << "no pooled buffer when a destination was given";
    if (sizes[i]) {
      EXPECT_EQ(m->payload_data, landing[i].data());
    }
    EXPECT_TRUE(same_payload(*m, payloads[i]));
    EXPECT_EQ(landing[i], payloads[i]);
  }
  EXPECT_EQ(asked.load(), 3) << "asked for every non-empty payload";
}

TEST_F(echo_fixture, OnSentRunsOnceAfterTheBytesLeft) {
  inbox box;
  runtime rt;
  auto c =
      connect_sync(rt, server->port(), ident("worker", 1), test_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c);
  const auto big = pattern(8 << 20, 7);
  auto [o, sent] = tracked(make_message(1, big, "x"));
  std::atomic<int> keepalive_dropped{0};
  o.keepalive = std::shared_ptr<int>(new int(0), [&](int* p) {
    ++keepalive_dropped;
    delete p;
  });
  (*c)->send(std::move(o));
  ASSERT_EQ(sent.wait_for(long_wait), std::future_status::ready);
  EXPECT_TRUE(sent.get().is_ok());
  ASSERT_TRUE(box.pop());
  EXPECT_EQ(keepalive_dropped.load(), 1) << "keepalive released after on_sent";
}

TEST_F(echo_fixture, ManyMessagesArriveInOrderIntact) {
  constexpr int n = 5000;
  std::mt19937 rng(1);
  std::vector<bytes> payloads;
  for (int i = 0; i < n; ++i)
    payloads.push_back(pattern(rng() % 300, static_cast<unsigned>(i)));
  inbox box;
  runtime rt;
  auto c =
      connect_sync(rt, server->port(), ident("worker", 1), test_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c);
  for (int i = 0; i < n; ++i)
    (*c)->send(make_message(static_cast<std::uint64_t>(i), payloads[static_cast<std::size_t>(i)],
                            std::to_string(i)));
  for (int i = 0; i < n; ++i) {
    auto m = box.pop();
    ASSERT_TRUE(m) << "missing echo " << i;
    ASSERT_EQ(m->id, static_cast<std::uint64_t>(i));
    ASSERT_EQ(to_string(m->meta), std::to_string(i));
    ASSERT_TRUE(same_payload(*m, payloads[static_cast<std::size_t>(i)]));
  }
}

TEST_F(echo_fixture, SeveralConnectionsFromSeveralThreads) {
  constexpr int conns = 4, per = 300;
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  inbox boxes[conns];
  std::vector<bytes> payloads[conns];
  for (int k = 0; k < conns; ++k)
    for (int i = 0; i < per; ++i)
      payloads[k].push_back(
          pattern(static_cast<std::size_t>(i * 97 % 5000), static_cast<unsigned>(k * 1000 + i)));
  runtime rt(2);
  for (int k = 0; k < conns; ++k)
    threads.emplace_back([&, k] {
      inbox& box = boxes[k];
      const auto& ps = payloads[k];
      auto c = connect_sync(rt, server->port(), ident("worker", k), test_caps(),
                            recording(nullptr, &box));
      if (!c) return;
      for (int i = 0; i < per; ++i)
        (*c)->send(make_message(static_cast<std::uint64_t>(i), ps[static_cast<std::size_t>(i)],
                                std::to_string(k)));
      for (int i = 0; i < per; ++i) {
        auto m = box.pop();
        if (!m || m->id != static_cast<std::uint64_t>(i) ||
            to_string(m->meta) != std::to_string(k) ||
            !same_payload(*m, ps[static_cast<std::size_t>(i)]))
          return;
      }
      ++good;
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(good.load(), conns);
  EXPECT_TRUE(server_log.wait_opens(conns));
}

TEST(Transport, StreamOrderHoldsUnderRandomPriorities) {
  caps c = test_caps();
  c.max_slice_bytes = 4096;  // most messages below go out in several interleaved slices
  std::mutex mu;
  std::map<std::uint64_t, std::vector<std::uint64_t>> seen;  // stream → seq
  std::atomic<int> bad{0};
  constexpr int n = 3000, streams = 8;
  std::promise<void> all;
  std::atomic<int> count{0};
  runtime server_rt(2);
  handlers sh;
  sh.on_message = [&](const connection_ptr&, message&& m) {
    const auto seq = std::stoull(to_string(m.meta));
    if (!same_payload(m, pattern(m.payload_size, seq))) ++bad;
    {
      std::lock_guard<std::mutex> g(mu);
      seen[m.stream].push_back(seq);
    }
    if (++count == n) all.set_value();
  };
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), c, sh);
  ASSERT_TRUE(l);
  std::mt19937 rng(42);
  std::vector<bytes> payloads;
  for (int i = 0; i < n; ++i)
    payloads.push_back(pattern(rng() % 20000, static_cast<unsigned>(i)));
  runtime rt;
  auto conn = connect_sync(rt, (*l)->port(), ident("worker", 0), c, {});
  ASSERT_TRUE(conn);
  for (int i = 0; i < n; ++i) {
    const auto& p = payloads[static_cast<std::size_t>(i)];
    (*conn)->send(make_message(static_cast<std::uint64_t>(i), p, std::to_string(i), rng() % streams,
                               static_cast<std::int32_t>(rng() % 11) - 5));
  }
  ASSERT_EQ(all.get_future().wait_for(long_wait), std::future_status::ready);
  EXPECT_EQ(bad.load(), 0);
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(streams));
  for (const auto& [s, seqs] : seen)
    EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end())) << "stream " << s << " reordered";
}

TEST(Transport, SenderKeepsWithinThePeersReassemblyCaps) {
  // Rising priorities make every new message preempt the one on the wire, and ids repeat
  // across streams; the receiver (same caps) would close on a third partial message, on
  // more than 64 KiB partially received, or on a second open (type, id).
  caps c = test_caps();
  c.max_slice_bytes = 4096;
  c.max_partial_messages = 2;
  c.max_buffered_bytes = 64 * 1024;
  constexpr int n = 40;
  std::vector<bytes> payloads;
  for (int i = 0; i < n; ++i)
    payloads.push_back(pattern(30000, static_cast<unsigned>(i)));
  std::mutex mu;
  std::map<std::uint64_t, std::vector<int>> seen;
  std::atomic<int> bad{0}, count{0};
  std::promise<void> all;
  event_log server_log;
  handlers sh = recording(&server_log, nullptr);
  sh.on_message = [&](const connection_ptr&, message&& m) {
    const int i = std::stoi(to_string(m.meta));
    if (!same_payload(m, payloads[static_cast<std::size_t>(i)])) ++bad;
    {
      std::lock_guard<std::mutex> g(mu);
      seen[m.stream].push_back(i);
    }
    if (++count == n) all.set_value();
  };
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), c, sh);
  ASSERT_TRUE(l);
  runtime rt;
  auto conn = connect_sync(rt, (*l)->port(), ident("worker", 0), c, {});
  ASSERT_TRUE(conn);
  for (int i = 0; i < n; ++i)
    (*conn)->send(make_message(static_cast<std::uint64_t>(i % 3),
                               payloads[static_cast<std::size_t>(i)], std::to_string(i),
                               static_cast<std::uint64_t>(i % 10), i));
  ASSERT_EQ(all.get_future().wait_for(long_wait), std::future_status::ready);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(server_log.closes(), 0u) << server_log.close_status(0).to_string();
  std::lock_guard<std::mutex> g(mu);
  for (const auto& [s, is] : seen)
    EXPECT_TRUE(std::is_sorted(is.begin(), is.end()));
}

// The send queue's order on TCP (shared memory has no kernel buffer to hold the sender back).
caps tcp_caps() {
  caps c = test_caps();
  c.shared_memory = false;
  return c;
}

TEST(Transport, SmallUrgentMessageOvertakesA64MiBTransfer) {
  // The receiver blocks inside payload_destination of the big message until the small one
  // has been queued behind it, so that the sender cannot have pushed all 64 MiB into the
  // kernel (whose buffers hold a few MiB) before the small one exists.
  std::promise<void> big_started, small_queued;
  auto small_queued_f = small_queued.get_future().share();
  std::mutex mu;
  std::vector<std::uint64_t> order;
  std::promise<void> both;
  const auto big = pattern(64 << 20, 1);
  const auto small = pattern(100, 2);
  runtime server_rt(1);
  handlers sh;
  sh.payload_destination = [&](const connection_ptr&, const message_head& h) -> void* {
    if (h.id == 1) {
      big_started.set_value();
      EXPECT_EQ(small_queued_f.wait_for(long_wait), std::future_status::ready);
    }
    return nullptr;
  };
  sh.on_message = [&](const connection_ptr&, message&& m) {
    std::lock_guard<std::mutex> g(mu);
    order.push_back(m.id);
    if (m.id == 1) {
      EXPECT_TRUE(same_payload(m, pattern(64 << 20, 1)));
    }
    if (order.size() == 2) both.set_value();
  };
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), tcp_caps(), sh);
  ASSERT_TRUE(l);
  runtime rt;
  auto c = connect_sync(rt, (*l)->port(), ident("worker", 0), tcp_caps(), {});
  ASSERT_TRUE(c);
  (*c)->send(make_message(1, big, "big", /*stream*/ 1, /*priority*/ 0));
  ASSERT_EQ(big_started.get_future().wait_for(long_wait), std::future_status::ready);
  (*c)->send(make_message(2, small, "small", /*stream*/ 2, /*priority*/ 10));
  small_queued.set_value();
  ASSERT_EQ(both.get_future().wait_for(long_wait), std::future_status::ready);
  std::lock_guard<std::mutex> g(mu);
  EXPECT_EQ(order, (std::vector<std::uint64_t>{2, 1}));
}

TEST(Transport, HighPriorityLiftsItsStreamInsteadOfOvertaking) {
  // Same setup; the urgent message is on the big one's stream: it must wait for it.
  std::promise<void> big_started, queued;
  auto queued_f = queued.get_future().share();
  std::mutex mu;
  std::vector<std::uint64_t> order;
  std::promise<void> all;
  const auto big = pattern(16 << 20, 1), other_big = pattern(16 << 20, 3), small = pattern(10, 2);
  runtime server_rt(1);
  handlers sh;
  sh.payload_destination = [&](const connection_ptr&, const message_head& h) -> void* {
    if (h.id == 1) {
      big_started.set_value();
      EXPECT_EQ(queued_f.wait_for(long_wait), std::future_status::ready);
    }
    return nullptr;
  };
  sh.on_message = [&](const connection_ptr&, message&& m) {
    std::lock_guard<std::mutex> g(mu);
    order.push_back(m.id);
    if (order.size() == 4) all.set_value();
  };
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), tcp_caps(), sh);
  ASSERT_TRUE(l);
  runtime rt;
  auto c = connect_sync(rt, (*l)->port(), ident("worker", 0), tcp_caps(), {});
  ASSERT_TRUE(c);
  (*c)->send(make_message(1, big, "", 1, 0));
  ASSERT_EQ(big_started.get_future().wait_for(long_wait), std::future_status::ready);
  (*c)->send(make_message(3, other_big, "", 3, 5));  // another stream, medium priority
  (*c)->send(make_message(2, small, "", 1, 10));     // stream 1: lifted to 10, stays behind 1
  (*c)->send(make_message(4, small, "", 4, 1));      // low priority, other stream
  queued.set_value();
  ASSERT_EQ(all.get_future().wait_for(long_wait), std::future_status::ready);
  std::lock_guard<std::mutex> g(mu);
  // Stream 1 (effective 10) goes first: 1 then 2; then stream 3 (5), then stream 4 (1).
  EXPECT_EQ(order, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST_F(echo_fixture, BothEndsKnowEachOthersIdentity) {
  event_log log;
  runtime rt;
  auto c =
      connect_sync(rt, server->port(), ident("worker", 7), test_caps(), recording(&log, nullptr));
  ASSERT_TRUE(c);
  EXPECT_TRUE((*c)->is_open());
  EXPECT_EQ(log.opens(), 1u) << "on_open ran before done";
  EXPECT_EQ((*c)->peer().role, "server");
  EXPECT_EQ((*c)->peer().rank, 0);
  EXPECT_EQ((*c)->peer().cluster_id, "test-cluster");
  EXPECT_TRUE((*c)->peer().secret.empty());
  EXPECT_EQ((*c)->remote_address(), "127.0.0.1:" + std::to_string(server->port()));
  ASSERT_TRUE(server_log.wait_opens(1));
  auto s = server_log.open_at(0);
  EXPECT_EQ(s->peer().role, "worker");
  EXPECT_EQ(s->peer().rank, 7);
  EXPECT_EQ(s->remote_address(), (*c)->local_address());
  EXPECT_EQ(s->local_address(), (*c)->remote_address());
}

TEST(Transport, HeartbeatsKeepAnIdleConnectionOpen) {
  caps c = test_caps();
  c.heartbeat_interval = 50ms;
  c.peer_timeout = 300ms;
  event_log server_log, client_log;
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), c, recording(&server_log, nullptr));
  ASSERT_TRUE(l);
  runtime rt;
  auto conn =
      connect_sync(rt, (*l)->port(), ident("worker", 0), c, recording(&client_log, nullptr));
  ASSERT_TRUE(conn);
  // Idle for more than three peer timeouts: nobody may time out.
  EXPECT_FALSE(client_log.wait_closes(1, 1000ms));
  EXPECT_EQ(server_log.closes(), 0u);
  EXPECT_TRUE((*conn)->is_open());
}

TEST(Transport, ConnectRetriesUntilTheListenerAppears) {
  const auto port = unused_port();
  runtime rt;
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  rt.connect("127.0.0.1", port, ident("worker", 0), test_caps(), {}, in(10000ms),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", port, ident("server", 0), test_caps(), {});
  ASSERT_TRUE(l) << l.error().to_string();
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  auto r = f.get();
  EXPECT_TRUE(r) << r.error().to_string();
}

TEST(Transport, ConnectToNobodyFailsAtTheDeadline) {
  runtime rt;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = connect_sync(rt, unused_port(), ident("worker", 0), test_caps(), {}, 300ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::peer_lost) << r.error().to_string();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5000ms);
}

TEST(Transport, ConnectResolvesHostNames) {
  runtime server_rt;
  auto l = server_rt.listen("localhost", 0, ident("server", 0), test_caps(), {});
  ASSERT_TRUE(l) << l.error().to_string();
  runtime rt;
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  rt.connect("localhost", (*l)->port(), ident("worker", 0), test_caps(), {}, in(5000ms),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  auto r = f.get();
  EXPECT_TRUE(r) << r.error().to_string();
}

TEST(Transport, RejectsInvalidConfigurationAndMessages) {
  const bytes p(10);
  runtime rt;
  auto bad = rt.listen("127.0.0.1", 0, ident(std::string(33, 'r'), 0), test_caps(), {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), errc::invalid_argument);
  caps zero = test_caps();
  zero.max_slice_bytes = 0;
  EXPECT_FALSE(rt.listen("127.0.0.1", 0, ident("server", 0), zero, {}));
  auto r = connect_sync(rt, 1, ident("w", 0), zero, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::invalid_argument);

  runtime server_rt;
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), test_caps(), {});
  ASSERT_TRUE(l);
  auto c = connect_sync(rt, (*l)->port(), ident("worker", 0), test_caps(), {});
  ASSERT_TRUE(c);
  auto expect_invalid = [&](outgoing o) {
    auto [m, f] = tracked(std::move(o));
    (*c)->send(std::move(m));
    ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
    EXPECT_EQ(f.get().code(), errc::invalid_argument);
  };
  auto reserved = make_message(1, p, "");
  reserved.type = serialization::frame_type::heartbeat;
  expect_invalid(reserved);
  auto flags = make_message(1, p, "");
  flags.flags = 0x8000;
  expect_invalid(flags);
  auto meta = make_message(1, p, "");
  meta.meta.resize(test_caps().max_meta_bytes + 1);
  expect_invalid(meta);
  auto null_payload = make_message(1, p, "");
  null_payload.payload = nullptr;
  expect_invalid(null_payload);
  EXPECT_TRUE((*c)->is_open()) << "a refused message does not close the connection";
}

}  // namespace
}  // namespace kvactor::net
