// Hostile and broken peers: wrong secrets and clusters, garbage, oversized claims, truncated
// and stalled frames, silence, floods of partial messages, protocol violations. Each is
// dropped with a logged reason, nothing is allocated beyond the caps, and the listener keeps
// serving a good client afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "net_test_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;
using ::testing::internal::CaptureStderr;
using ::testing::internal::GetCapturedStderr;

constexpr std::uint8_t app_type = 30;

caps hostile_caps() {
  caps c;
  c.max_meta_bytes = 4096;
  c.max_message_bytes = 16 << 20;
  c.max_slice_bytes = 1 << 20;
  c.max_partial_messages = 8;
  c.max_buffered_bytes = 40 << 20;
  c.handshake_timeout = 500ms;
  c.frame_timeout = 500ms;
  c.heartbeat_interval = 100ms;
  c.peer_timeout = 1000ms;
  return c;
}

fr::frame_header app_frame(std::uint64_t id, std::uint64_t total, std::uint32_t slice,
                           std::uint64_t offset = 0, bool first = true) {
  fr::frame_header h;
  h.type = app_type;
  h.id = id;
  h.total_size = total;
  h.offset = offset;
  h.slice_size = slice;
  h.flags = static_cast<std::uint16_t>((first ? fr::frame_flags::first : 0) |
                                       (offset + slice == total ? fr::frame_flags::last : 0));
  return h;
}

struct hostile : ::testing::Test {
  buffer_pool pool{0};  // caches nothing: live bytes are exactly what is held
  // Declared before the runtime: handlers may run until the runtime is destroyed.
  event_log log;
  inbox box;
  std::atomic<std::uint64_t> asked_bytes{0};  // payload memory the server went for
  runtime server_rt{2, &pool};
  std::shared_ptr<listener> server;
  identity good = ident("worker", 1);

  void SetUp() override {
    handlers h = recording(&log, &box);
    h.payload_destination = [this](const connection_ptr&, const message_head& m) -> void* {
      asked_bytes += m.payload_size;
      return nullptr;  // the pool
    };
    auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), hostile_caps(), h);
    ASSERT_TRUE(l) << l.error().to_string();
    server = *l;
  }

  raw_socket raw() {
    auto s = raw_socket::connect_to(server->port());
    EXPECT_TRUE(s.valid());
    return s;
  }

  raw_socket authenticated() {
    auto s = raw();
    EXPECT_TRUE(raw_authenticate(s, good));
    return s;
  }

  // The server's on_close for the i-th opened connection.
  status wait_close(std::size_t i) {
    if (!log.wait_closes(i + 1)) return status{errc::internal, "test: no on_close"};
    return log.close_status(i);
  }

  void expect_serves_good_client() {
    inbox replies;
    runtime rt;
    handlers h = recording(nullptr, &replies);
    auto c = connect_sync(rt, server->port(), good, hostile_caps(), h);
    ASSERT_TRUE(c) << "listener no longer serves: " << c.error().to_string();
    const auto before = box.size();
    const bytes payload = pattern(3000, 9);
    outgoing o;
    o.type = app_type;
    o.id = 77;
    o.payload = payload.data();
    o.payload_size = payload.size();
    auto [m, sent] = tracked(std::move(o));
    (*c)->send(std::move(m));
    ASSERT_EQ(sent.wait_for(long_wait), std::future_status::ready);
    EXPECT_TRUE(sent.get().is_ok());
    auto got = box.pop();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, 77u);
    EXPECT_EQ(got->payload_size, 3000u);
    EXPECT_EQ(box.size(), before);
  }
};

TEST_F(hostile, WrongSecretIsRefusedByTheAcceptor) {
  CaptureStderr();
  runtime rt;
  auto c = connect_sync(rt, server->port(), ident("worker", 1, "wrong"), hostile_caps(), {});
  const auto err = GetCapturedStderr();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::unauthenticated) << c.error().to_string();
  EXPECT_NE(err.find("kvactor.net: closing 127.0.0.1:"), std::string::npos) << err;
  EXPECT_NE(err.find("unauthenticated"), std::string::npos) << err;
  EXPECT_EQ(log.opens(), 0u);
  expect_serves_good_client();
  EXPECT_EQ(log.opens(), 1u);
}

TEST_F(hostile, ImpostorAcceptorIsRefusedByTheConnector) {
  // A server that does not know the secret: it cannot produce the WELCOME MAC.
  raw_listener fake;
  runtime rt;
  auto p = std::make_shared<std::promise<result<connection_ptr>>>();
  auto f = p->get_future();
  rt.connect("127.0.0.1", fake.port(), good, hostile_caps(), {}, in(5000ms),
             [p](result<connection_ptr> r) { p->set_value(std::move(r)); });
  auto s = fake.accept();
  ASSERT_TRUE(s.valid());
  ASSERT_TRUE(s.send_control(
      fr::frame_type::challenge,
      handshake::encode(handshake::challenge{handshake::protocol_version, good.cluster_id, {}})));
  auto hello = s.read_frame();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->h.type, fr::frame_type::hello);
  handshake::welcome w{"server", 0, {}};
  w.mac_a.fill(0xab);
  ASSERT_TRUE(s.send_control(fr::frame_type::welcome, handshake::encode(w)));
  ASSERT_EQ(f.wait_for(long_wait), std::future_status::ready);
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::unauthenticated) << r.error().to_string();
  EXPECT_TRUE(s.wait_closed());
  auto g = s.drained_goodbye();
  ASSERT_TRUE(g) << "the connector says why";
  EXPECT_EQ(g->code, errc::unauthenticated);
}

TEST_F(hostile, WrongClusterIsRefused) {
  runtime rt;
  auto c = connect_sync(rt, server->port(), ident("worker", 1, "s3cret", "other-cluster"),
                        hostile_caps(), {});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), errc::unauthenticated);
  EXPECT_NE(c.error().message().find("cluster"), std::string::npos) << c.error().to_string();
  // The acceptor side refuses too when the connector lies about its cluster in HELLO.
  auto s = raw();
  auto ch = s.read_frame();
  ASSERT_TRUE(ch);
  handshake::hello h{"other-cluster", "worker", 1, {}, {}};
  ASSERT_TRUE(s.send_control(fr::frame_type::hello, handshake::encode(h)));
  EXPECT_TRUE(s.wait_closed());
  auto g = s.drained_goodbye();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code, errc::unauthenticated);
  expect_serves_good_client();
}

TEST_F(hostile, GarbageInsteadOfAHeader) {
  CaptureStderr();
  auto s = raw();
  std::string junk = "GET / HTTP/1.1\r\nHost: kvactor\r\n\r\n";
  junk.resize(fr::frame_header_size, 'x');
  ASSERT_TRUE(s.send_bytes(junk.data(), junk.size()));
  EXPECT_TRUE(s.wait_closed());
  expect_serves_good_client();
  const auto err = GetCapturedStderr();
  EXPECT_NE(err.find("bad magic"), std::string::npos) << err;
  EXPECT_EQ(log.opens(), 1u) << "only the good client";
}

TEST_F(hostile, ApplicationFrameBeforeAuthentication) {
  auto s = raw();
  ASSERT_TRUE(s.send_frame(app_frame(1, 0, 0)));
  EXPECT_TRUE(s.wait_closed());
  auto g = s.drained_goodbye();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->code, errc::unauthenticated);
  expect_serves_good_client();
}

TEST_F(hostile, PayloadOrBigMetaBeforeAuthentication) {
  {
    auto s = raw();
    fr::frame_header h;
    h.type = fr::frame_type::hello;
    h.flags = fr::frame_flags::first | fr::frame_flags::last;
    h.total_size = 10;
    h.slice_size = 10;
    ASSERT_TRUE(s.send_frame(h, {}, bytes(10)));
    EXPECT_TRUE(s.wait_closed());
  }
  {
    auto s = raw();
    fr::frame_header h;
    h.type = fr::frame_type::hello;
    h.flags = fr::frame_flags::first | fr::frame_flags::last;
    ASSERT_TRUE(s.send_frame(h, bytes(handshake::max_meta_size + 1)));
    EXPECT_TRUE(s.wait_closed());
  }
  expect_serves_good_client();
}

TEST_F(hostile, FourGiBPayloadClaimIsRejectedBeforeAllocating) {
  const auto live_before = pool.get_stats().live_bytes;
  {
    // Before authentication...
    auto s = raw();
    ASSERT_TRUE(s.send_frame(app_frame(1, std::uint64_t{4} << 30, 1 << 20)));
    EXPECT_TRUE(s.wait_closed());
  }
  {
    // ...and after.
    auto s = authenticated();
    ASSERT_TRUE(s.send_frame(app_frame(1, std::uint64_t{4} << 30, 1 << 20)));
    EXPECT_TRUE(s.wait_closed());
    EXPECT_LE(pool.get_stats().live_bytes, live_before + hostile_caps().max_message_bytes);
    const auto st = wait_close(0);
    EXPECT_EQ(st.code(), errc::protocol_error);
    EXPECT_NE(st.message().find("exceeds the cap"), std::string::npos) << st.to_string();
  }
  EXPECT_EQ(pool.get_stats().live_bytes, live_before);
  EXPECT_EQ(asked_bytes.load(), 0u);
  expect_serves_good_client();
}

TEST_F(hostile, BufferedBytesCapBoundsPartialMessages) {
  // Three 16 MiB messages started, never finished: 48 MiB > the 40 MiB cap.
  auto s = authenticated();
  for (std::uint64_t id = 1; id <= 3; ++id)
    ASSERT_TRUE(s.send_frame(app_frame(id, 16 << 20, 1), {}, bytes(1)) || id == 3);
  EXPECT_TRUE(s.wait_closed());
  const auto st = wait_close(0);
  EXPECT_EQ(st.code(), errc::protocol_error);
  EXPECT_NE(st.message().find("over the cap"), std::string::npos) << st.to_string();
  EXPECT_EQ(asked_bytes.load(), std::uint64_t{32} << 20) << "the third was refused unallocated";
  EXPECT_EQ(pool.get_stats().live_bytes, 0u);
  expect_serves_good_client();
}

TEST_F(hostile, TruncatedFrameThenClose) {
  const auto live_before = pool.get_stats().live_bytes;
  {
    auto s = authenticated();
    ASSERT_TRUE(s.send_frame(app_frame(5, 1 << 20, 1 << 20), {}, {}));
    ASSERT_TRUE(s.send_bytes(pattern(1000, 1)));
  }  // closed mid-payload
  const auto st = wait_close(0);
  EXPECT_EQ(st.code(), errc::peer_lost) << st.to_string();
  EXPECT_NE(st.message().find("middle of a frame"), std::string::npos) << st.to_string();
  EXPECT_EQ(pool.get_stats().live_bytes, live_before) << "the partial payload was released";
  {
    auto s = authenticated();
    const auto hb = fr::encode_frame_header(app_frame(6, 10, 10));
    ASSERT_TRUE(s.send_bytes(hb.data(), 30));  // half a header
  }
  EXPECT_EQ(wait_close(1).code(), errc::peer_lost);
  EXPECT_EQ(box.size(), 0u);
  expect_serves_good_client();
}

TEST_F(hostile, StallMidFrameIsDroppedAfterFrameTimeout) {
  auto s = authenticated();
  ASSERT_TRUE(s.send_frame(app_frame(5, 100000, 100000), {}, {}));
  ASSERT_TRUE(s.send_bytes(pattern(500, 1)));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.wait_closed());
  const auto took = std::chrono::steady_clock::now() - t0;
  const auto st = wait_close(0);
  EXPECT_EQ(st.code(), errc::timeout);
  EXPECT_NE(st.message().find("frame incomplete after 500 ms"), std::string::npos)
      << st.to_string();
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, hostile_caps().peer_timeout) << "the frame timeout, not the peer timeout";
  expect_serves_good_client();
}

TEST_F(hostile, StallMidHeaderIsDroppedAfterFrameTimeout) {
  auto s = authenticated();
  const auto hb = fr::encode_frame_header(app_frame(6, 10, 10));
  ASSERT_TRUE(s.send_bytes(hb.data(), 20));
  EXPECT_TRUE(s.wait_closed());
  const auto st = wait_close(0);
  EXPECT_EQ(st.code(), errc::timeout);
  EXPECT_NE(st.message().find("frame incomplete"), std::string::npos) << st.to_string();
  expect_serves_good_client();
}

TEST_F(hostile, ClientThatNeverSpeaksIsDroppedAfterHandshakeTimeout) {
  CaptureStderr();
  auto s = raw();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.wait_closed());
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, 5000ms);
  const auto err = GetCapturedStderr();
  EXPECT_NE(err.find("handshake not complete after 500 ms"), std::string::npos) << err;
  EXPECT_EQ(log.opens(), 0u) << "never opened, so no on_open/on_close";
  EXPECT_EQ(log.closes(), 0u);
  expect_serves_good_client();
}

TEST_F(hostile, PeerSilentAfterTheHandshakeIsDropped) {
  auto s = authenticated();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.wait_closed());  // reads heartbeats, sends nothing
  const auto took = std::chrono::steady_clock::now() - t0;
  const auto st = wait_close(0);
  EXPECT_EQ(st.code(), errc::timeout);
  EXPECT_EQ(st.message(), "no heartbeat for 1 s");
  EXPECT_GE(took, 900ms);
  // The server sent heartbeats meanwhile.
  EXPECT_GE(s.drained.size(), 3 * fr::frame_header_size);
  expect_serves_good_client();
}

TEST_F(hostile, FloodOfPartialMessagesIsDropped) {
  auto s = authenticated();
  bool ok = true;
  for (std::uint64_t id = 0; id <= hostile_caps().max_partial_messages && ok; ++id)
    ok = s.send_frame(app_frame(id, 2, 1), {}, bytes(1));
  EXPECT_TRUE(s.wait_closed());
  const auto st = wait_close(0);
  EXPECT_EQ(st.code(), errc::protocol_error);
  EXPECT_NE(st.message().find("more than 8 partial messages"), std::string::npos) << st.to_string();
  expect_serves_good_client();
}

struct violation {
  const char* name;
  std::vector<std::pair<fr::frame_header, bytes>> frames;  // after authentication
  const char* reason;
};

TEST_F(hostile, ProtocolViolationsAfterAuthentication) {
  auto cont = [](std::uint64_t id, std::uint64_t total, std::uint32_t slice, std::uint64_t off) {
    return app_frame(id, total, slice, off, false);
  };
  fr::frame_header hs;
  hs.type = fr::frame_type::challenge;
  hs.flags = fr::frame_flags::first | fr::frame_flags::last;
  fr::frame_header unknown = hs;
  unknown.type = 9;
  fr::frame_header chunked_beat;
  chunked_beat.type = fr::frame_type::heartbeat;
  chunked_beat.flags = fr::frame_flags::first;
  chunked_beat.total_size = 2;
  chunked_beat.slice_size = 1;
  fr::frame_header other_stream = cont(1, 10, 5, 5);
  other_stream.stream = 3;
  const std::vector<violation> cases{
      {"continuation without a partial message",
       {{cont(1, 10, 5, 5), bytes(5)}},
       "no partial message"},
      {"second FIRST for an open key",
       {{app_frame(1, 10, 5), bytes(5)}, {app_frame(1, 10, 5), bytes(5)}},
       "still partial"},
      {"slice out of order",
       {{app_frame(1, 10, 4), bytes(4)}, {cont(1, 10, 3, 7), bytes(3)}},
       "expected 4"},
      {"continuation disagrees with FIRST",
       {{app_frame(1, 10, 5), bytes(5)}, {other_stream, bytes(5)}},
       "disagrees"},
      {"handshake frame after authentication", {{hs, {}}}, "after the handshake"},
      {"unknown transport type", {{unknown, {}}}, "type 9"},
      {"transport frame in pieces", {{chunked_beat, bytes(1)}}, "in several frames"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    auto s = authenticated();
    for (const auto& [h, payload] : cases[i].frames)
      s.send_frame(h, {}, payload);
    EXPECT_TRUE(s.wait_closed());
    const auto st = wait_close(i);
    EXPECT_EQ(st.code(), errc::protocol_error) << st.to_string();
    EXPECT_NE(st.message().find(cases[i].reason), std::string::npos) << st.to_string();
  }
  EXPECT_EQ(box.size(), 0u);
  expect_serves_good_client();
}

TEST_F(hostile, WholeFramesWithACollidingKeyAreFine) {
  // A FIRST|LAST frame never touches the partial table, even when its key is open there.
  auto s = authenticated();
  ASSERT_TRUE(s.send_frame(app_frame(1, 10, 4), {}, pattern(4, 0)));
  ASSERT_TRUE(s.send_frame(app_frame(1, 3, 3), {}, pattern(3, 5)));
  ASSERT_TRUE(s.send_frame(app_frame(1, 10, 6, 4, false), {}, bytes(6)));
  auto a = box.pop();
  auto b = box.pop();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->payload_size, 3u);
  EXPECT_EQ(b->payload_size, 10u);
  EXPECT_EQ(log.closes(), 0u);
}

TEST_F(hostile, ThrowingHandlerClosesOnlyItsConnection) {
  event_log clog;
  runtime rt;
  handlers h;
  h.on_message = [](const connection_ptr&, message&&) { throw std::runtime_error("boom"); };
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), hostile_caps(), h);
  ASSERT_TRUE(l);
  auto c = connect_sync(rt, (*l)->port(), good, hostile_caps(), recording(&clog, nullptr));
  ASSERT_TRUE(c);
  outgoing o;
  o.type = app_type;
  (*c)->send(std::move(o));
  ASSERT_TRUE(clog.wait_closes(1));
  EXPECT_EQ(clog.close_status(0).code(), errc::internal) << clog.close_status(0).to_string();
  EXPECT_NE(clog.close_status(0).message().find("boom"), std::string::npos);
  expect_serves_good_client();
}

}  // namespace
}  // namespace kvactor::net
