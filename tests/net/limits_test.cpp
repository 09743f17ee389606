// What a peer that never authenticates, or never finishes a message, may cost: a cap on
// connections in the handshake per listener (the oldest goes first), no read buffer beyond
// 1 KiB and no pooled memory before authentication, rate-limited lines about refused
// connections, and a time bound on partial messages that heartbeats do not extend.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "net_test_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

constexpr std::uint8_t app_type = 30;
constexpr std::size_t handshake_buffer = 1024;  // connection.hpp
constexpr std::size_t read_buffer = 64 * 1024;

caps limit_caps() {
  caps c;
  c.max_message_bytes = 16 << 20;
  c.max_buffered_bytes = 40 << 20;
  c.handshake_timeout = 20000ms;  // no handshake times out during a test
  c.heartbeat_interval = 100ms;
  c.peer_timeout = 1000ms;
  c.max_pending_connections = 8;
  return c;
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Everything written to file descriptor 2 while it lives, readable with a bounded wait.
class stderr_pipe {
 public:
  stderr_pipe() {
    int p[2];
    EXPECT_EQ(::pipe(p), 0);
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(p[1], 2);
    ::close(p[1]);
    reader_ = std::thread([this, fd = p[0]] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::lock_guard<std::mutex> g(mu_);
        text_.append(buf, static_cast<std::size_t>(n));
        cv_.notify_all();
      }
      ::close(fd);
    });
  }
  ~stderr_pipe() { restore(); }
  /// Puts the real stderr back and returns everything captured.
  std::string restore() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, 2);  // closes the pipe's last write end: the reader sees EOF
      ::close(saved_);
      saved_ = -1;
      reader_.join();
    }
    std::lock_guard<std::mutex> g(mu_);
    return text_;
  }
  /// Waits until pred(text so far) holds; false after the timeout.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = long_wait) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return pred(text_); });
  }

 private:
  int saved_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
};

// Lines logged one by one about refused connections, and the counts that the summaries add.
struct refusal_count {
  std::size_t lines = 0;
  std::size_t summarised = 0;
  std::size_t summaries = 0;
};

refusal_count count_refusals(const std::string& text) {
  refusal_count r;
  static const std::regex summary(R"(\.\.\. and ([0-9]+) more refused connections on port )");
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (line.rfind("kvactor.net: ", 0) != 0) continue;
    if (std::regex_search(line, m, summary)) {
      ++r.summaries;
      r.summarised += std::stoul(m[1]);
    } else if (line.find("closing 127.0.0.1:") != std::string::npos) {
      ++r.lines;
    }
  }
  return r;
}

// A connection refused at once: 56 bytes of garbage, and the server closes.
void refused_connection(std::uint16_t port) {
  auto s = raw_socket::connect_to(port);
  ASSERT_TRUE(s.valid());
  const std::string junk(fr::frame_header_size, 'x');
  ASSERT_TRUE(s.send_bytes(junk.data(), junk.size()));
  ASSERT_TRUE(s.wait_closed());
}

fr::frame_header first_slice(std::uint64_t id, std::uint64_t total, std::uint32_t slice) {
  fr::frame_header h;
  h.type = app_type;
  h.id = id;
  h.total_size = total;
  h.slice_size = slice;
  h.flags = fr::frame_flags::first;
  return h;
}

struct limits : ::testing::Test {
  buffer_pool pool{0};  // caches nothing: live bytes are exactly what is held
  event_log log;
  inbox box;
  std::atomic<std::uint64_t> asked_bytes{0};
  runtime server_rt{1, &pool};
  std::shared_ptr<listener> server;
  identity good = ident("worker", 1);

  void listen(caps c) {
    handlers h = recording(&log, &box);
    h.payload_destination = [this](const connection_ptr&, const message_head& m) -> void* {
      asked_bytes += m.payload_size;
      return nullptr;
    };
    auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), c, h);
    ASSERT_TRUE(l) << l.error().to_string();
    server = *l;
  }

  // A raw connection whose CHALLENGE arrived: the server holds it in the handshake.
  struct held {
    raw_socket s;
    std::optional<raw_frame> challenge;
  };
  held pending() {
    held h{raw_socket::connect_to(server->port()), std::nullopt};
    EXPECT_TRUE(h.s.valid());
    h.challenge = h.s.read_frame();
    EXPECT_TRUE(h.challenge && h.challenge->h.type == fr::frame_type::challenge);
    return h;
  }
};

TEST_F(limits, PendingConnectionsAreCappedOldestFirst) {
  listen(limit_caps());
  std::vector<held> socks;
  for (int i = 0; i < 8; ++i)
    socks.push_back(pending());
  EXPECT_EQ(server_rt.get_stats().pending_connections, 8u);
  // The ninth closes the first, and only the first.
  socks.push_back(pending());
  ASSERT_TRUE(socks[0].s.wait_closed());
  auto g = socks[0].s.drained_goodbye();
  ASSERT_TRUE(g) << "the dropped peer is told why";
  EXPECT_EQ(g->code, errc::unauthenticated);
  EXPECT_NE(g->message.find("max_pending_connections"), std::string::npos) << g->message;
  EXPECT_EQ(server_rt.get_stats().pending_connections, 8u);
  // The second is still in its handshake: it can finish it.
  ASSERT_TRUE(raw_authenticate(socks[1].s, good, socks[1].challenge));
  ASSERT_TRUE(log.wait_opens(1));
  EXPECT_EQ(server_rt.get_stats().pending_connections, 7u);
  // An authenticated connection no longer counts: eight more pending ones do not drop it.
  for (int i = 0; i < 8; ++i)
    socks.push_back(pending());
  for (int i = 2; i <= 8; ++i) {
    SCOPED_TRACE(i);
    EXPECT_TRUE(socks[i].s.wait_closed());
  }
  EXPECT_EQ(server_rt.get_stats().pending_connections, 8u);
  EXPECT_EQ(log.closes(), 0u);
  EXPECT_TRUE(socks[1].s.send_control(fr::frame_type::heartbeat, {}));
  outgoing o;
  o.type = app_type;
  o.id = 5;
  log.open_at(0)->send(std::move(o));
  auto f = socks[1].s.read_non_heartbeat();
  ASSERT_TRUE(f) << "the authenticated connection survived the flood";
  EXPECT_EQ(f->h.id, 5u);
}

TEST_F(limits, PendingConnectionsHoldNoReadBufferNorPooledMemory) {
  rlimit r{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &r), 0);
  EXPECT_EQ(r.rlim_cur, r.rlim_max) << "the runtime raised the soft limit";
  // Both ends are in this process: two descriptors per connection.
  const std::size_t n = std::min<std::size_t>(1000, r.rlim_cur > 200 ? (r.rlim_cur - 100) / 2 : 0);
  ASSERT_GE(n, 50u) << "too few file descriptors for this test";
  caps c = limit_caps();
  c.max_pending_connections = n;
  listen(c);
  const long rss_before = rss_kib();
  std::vector<held> socks;
  for (std::size_t i = 0; i < n; ++i)
    socks.push_back(pending());
  const long rss_after = rss_kib();
  const auto st = server_rt.get_stats();
  EXPECT_EQ(st.pending_connections, n);
  EXPECT_EQ(st.connections, n);
  // One small buffer each (and one for the connection the listener prepares for the next
  // accept); before, each held 64 KiB.
  EXPECT_LE(st.read_buffer_bytes, (n + 1) * handshake_buffer);
  EXPECT_EQ(pool.get_stats().live_bytes, 0u);
  EXPECT_EQ(asked_bytes.load(), 0u);
  // A generous bound: 16 KiB each (64 KiB and more before).
  EXPECT_LT(rss_after - rss_before, static_cast<long>(n) * 16)
      << n << " pending connections: RSS from " << rss_before << " to " << rss_after << " KiB";
  // The read buffer comes with authentication.
  ASSERT_TRUE(raw_authenticate(socks[0].s, good, socks[0].challenge));
  ASSERT_TRUE(log.wait_opens(1));
  const auto opened = server_rt.get_stats();
  EXPECT_EQ(opened.pending_connections, n - 1);
  EXPECT_EQ(opened.read_buffer_bytes, st.read_buffer_bytes + read_buffer - handshake_buffer);
  // Closed connections give theirs back.
  socks.clear();
  ASSERT_TRUE(log.wait_closes(1));
  EXPECT_EQ(log.close_status(0).code(), errc::peer_lost);
}

TEST_F(limits, RefusalLinesAreRateLimitedPerListener) {
  stderr_pipe err;
  caps c = limit_caps();
  c.refusal_log_lines = 5;
  c.refusal_log_interval = 600000ms;  // one interval: the summary comes at the listener's stop
  listen(c);
  constexpr std::size_t n = 2000;
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_NO_FATAL_FAILURE(refused_connection(server->port()));
  server->stop();
  ASSERT_TRUE(err.wait([](const std::string& t) { return count_refusals(t).summaries == 1; }))
      << err.restore();
  const auto text = err.restore();
  const auto r = count_refusals(text);
  EXPECT_EQ(r.lines, 5u) << text;
  EXPECT_EQ(r.summarised, n - 5) << text;
  EXPECT_NE(text.find("bad magic"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 6) << text;
}

TEST_F(limits, HeldBackRefusalsAreSummedUpWhenTheIntervalEnds) {
  stderr_pipe err;
  caps c = limit_caps();
  c.refusal_log_lines = 3;
  c.refusal_log_interval = 300ms;
  listen(c);
  constexpr std::size_t n = 40;
  for (std::size_t i = 0; i < n; ++i)
    ASSERT_NO_FATAL_FAILURE(refused_connection(server->port()));
  // The listener keeps running: a timer reports what it held back.
  const bool all = err.wait([](const std::string& t) {
    const auto r = count_refusals(t);
    return r.lines + r.summarised == n;
  });
  const auto text = err.restore();
  ASSERT_TRUE(all) << text;
  const auto r = count_refusals(text);
  EXPECT_GE(r.summaries, 1u) << text;
  EXPECT_LE(r.lines, 3 * (r.summaries + 1)) << text;
  EXPECT_NE(text.find("more refused connections on port " + std::to_string(server->port()) +
                      " in the last "),
            std::string::npos)
      << text;
}

TEST_F(limits, PartialMessageKeptAliveByHeartbeatsTimesOut) {
  caps c = limit_caps();
  c.partial_message_timeout = 1500ms;  // longer than the peer timeout (1 s)
  listen(c);
  auto s = raw_socket::connect_to(server->port());
  ASSERT_TRUE(raw_authenticate(s, good));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.send_frame(first_slice(1, 16 << 20, 1), {}, bytes(1)));
  // Answer each of the server's heartbeats with one, and nothing else.
  std::optional<handshake::goodbye> bye;
  for (;;) {
    auto f = s.read_frame(5000ms);
    if (!f) break;
    if (f->h.type == fr::frame_type::heartbeat) {
      s.send_control(fr::frame_type::heartbeat, {});
    } else if (f->h.type == fr::frame_type::goodbye) {
      auto g = handshake::decode_goodbye(f->meta.data(), f->meta.size());
      if (g) bye = *g;
    }
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(log.wait_closes(1));
  const auto st = log.close_status(0);
  EXPECT_EQ(st.code(), errc::timeout) << st.to_string();
  EXPECT_NE(st.message().find("id 1 incomplete after 1500 ms (1 of 16777216 payload bytes"),
            std::string::npos)
      << st.to_string();
  ASSERT_TRUE(bye) << "the peer is told why";
  EXPECT_EQ(bye->code, errc::timeout);
  EXPECT_GE(took, 1400ms) << "heartbeats kept the connection past the peer timeout";
  EXPECT_LT(took, 5000ms);
  EXPECT_EQ(asked_bytes.load(), std::uint64_t{16} << 20) << "the payload was reserved...";
  EXPECT_EQ(pool.get_stats().live_bytes, 0u) << "...and released";
}

TEST_F(limits, CompleteSlicedMessagesAreNotAffected) {
  caps c = limit_caps();
  c.partial_message_timeout = 1500ms;
  listen(c);
  auto s = raw_socket::connect_to(server->port());
  ASSERT_TRUE(raw_authenticate(s, good));
  const bytes payload = pattern(3 << 20, 4);
  for (std::uint64_t off = 0; off < payload.size(); off += 1 << 20) {
    fr::frame_header h = first_slice(2, payload.size(), 1 << 20);
    h.offset = off;
    h.flags =
        static_cast<std::uint16_t>((off == 0 ? fr::frame_flags::first : 0) |
                                   (off + (1 << 20) == payload.size() ? fr::frame_flags::last : 0));
    ASSERT_TRUE(
        s.send_frame(h, {}, bytes(payload.begin() + off, payload.begin() + off + (1 << 20))));
  }
  auto m = box.pop();
  ASSERT_TRUE(m);
  ASSERT_EQ(m->payload_size, payload.size());
  EXPECT_EQ(std::memcmp(m->payload_data, payload.data(), payload.size()), 0);
  EXPECT_EQ(log.closes(), 0u);
}

TEST(limits_config, ZeroCapsAreRefused) {
  runtime rt;
  caps c;
  c.max_pending_connections = 0;
  auto l = rt.listen("127.0.0.1", 0, ident("server", 0), c, {});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code(), errc::invalid_argument);
  c = caps{};
  c.partial_message_timeout = 0ms;
  l = rt.listen("127.0.0.1", 0, ident("server", 0), c, {});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code(), errc::invalid_argument);
}

}  // namespace
}  // namespace kvactor::net
