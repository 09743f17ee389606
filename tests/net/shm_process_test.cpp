// Shared memory across real processes (the peer is tests/net/shm_peer): used when both have
// it on, not when the peer runs with KVACTOR_SHM=0, and a peer killed in the middle of a
// transfer either way still turns into peer_lost here, after which no segment remains.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <kvactor/detail/spawn.hpp>

#include "shm_util.hpp"

#ifndef SHM_PEER
#error "SHM_PEER must name the shm_peer program (tests/net/CMakeLists.txt sets it)"
#endif

namespace kvactor::net {
namespace {

using namespace testing;

// The peer process: started with KVACTOR_SHM set as asked; its port read from its stdout.
struct peer_process {
  kvactor::detail::child_process proc;
  int to_child = -1;
  std::uint16_t port = 0;

  explicit peer_process(bool shm) {
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    kvactor::detail::spawn_options o;
    o.argv = {SHM_PEER};
    o.env = kvactor::detail::environment_with({{"KVACTOR_SHM", shm ? "1" : "0"}});
    o.stdin_fd = in[0];
    o.stdout_fd = out[1];
    o.die_with_parent = true;
    proc = kvactor::detail::child_process(o);
    ::close(in[0]);
    ::close(out[1]);
    to_child = in[1];
    std::string line;
    const auto until = std::chrono::steady_clock::now() + long_wait;
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < until) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) continue;
      char buf[64];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    unsigned p = 0;
    if (std::sscanf(line.c_str(), "PORT %u", &p) == 1) port = static_cast<std::uint16_t>(p);
  }
  ~peer_process() {
    if (to_child >= 0) ::close(to_child);  // it exits when its stdin closes
    if (!proc.reaped() && !proc.wait_for(std::chrono::seconds(10))) proc.kill_and_reap();
  }
  peer_process(const peer_process&) = delete;
  peer_process& operator=(const peer_process&) = delete;
};

bool shm_possible() {
  return detail::shm_allowed_by_environment() && !detail::shm_host_token(0).empty();
}

struct shm_process : ::testing::Test {
  std::size_t before = 0;
  void SetUp() override {
    if (!shm_possible()) GTEST_SKIP() << "KVACTOR_SHM is off, or no host token here";
    before = segments_here();
  }
};

TEST_F(shm_process, UsedAcrossProcessesUnlessThePeerTurnedItOff) {
  for (bool on : {true, false}) {
    SCOPED_TRACE(on ? "peer on" : "peer with KVACTOR_SHM=0");
    peer_process peer(on);
    ASSERT_NE(peer.port, 0) << "the peer did not start";
    const bytes big = pattern(16 << 20, 2);
    inbox box;
    runtime rt;
    auto c = connect_sync(rt, peer.port, ident("worker", 0), shm_caps(), recording(nullptr, &box));
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(settle(*c, box));
    (*c)->send(shm_message(1, big));
    auto m = box.pop();
    ASSERT_TRUE(m);
    ASSERT_EQ(m->payload_size, big.size());
    EXPECT_EQ(std::memcmp(m->payload_data, big.data(), big.size()), 0);
    const auto s = rt.get_stats();
    if (on) {
      EXPECT_EQ(s.shm_segments, 2u);
      EXPECT_GE(s.shm_bytes_sent, big.size() / 2);
      EXPECT_GE(s.shm_bytes_received, big.size() / 2);
    } else {
      EXPECT_EQ(s.shm_segments, 0u) << "declined: this end's segment dropped";
      EXPECT_EQ(s.shm_bytes_sent + s.shm_bytes_received, 0u);
    }
  }
  EXPECT_EQ(segments_here(), before);
}

TEST_F(shm_process, PeerKilledWhileSendingIsPeerLost) {
  peer_process peer(true);
  ASSERT_NE(peer.port, 0);
  event_log log;
  inbox box;
  {
    runtime rt;
    auto c = connect_sync(rt, peer.port, ident("worker", 0), shm_caps(), recording(&log, &box));
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(settle(*c, box));
    // The peer streams 8 MiB messages at us, through its segment, until it dies.
    outgoing flood;
    flood.type = 21;
    flood.meta = to_bytes("100000 8388608");
    (*c)->send(std::move(flood));
    for (int i = 0; i < 3; ++i) {
      auto m = box.pop();
      ASSERT_TRUE(m);
      EXPECT_EQ(m->type, 22);
      EXPECT_EQ(m->payload_size, 8u << 20);
    }
    EXPECT_GT(rt.get_stats().shm_bytes_received, 0u);
    peer.proc.signal(SIGKILL);
    ASSERT_TRUE(log.wait_closes(1));
    EXPECT_EQ(log.close_status(0).code(), errc::peer_lost) << log.close_status(0).to_string();
    EXPECT_EQ(rt.get_stats().shm_segments, 0u) << "unmapped before on_close";
  }
  EXPECT_EQ(segments_here(), before);
}

TEST_F(shm_process, PeerKilledWhileReceivingIsPeerLost) {
  peer_process peer(true);
  ASSERT_NE(peer.port, 0);
  event_log log;
  inbox box;
  constexpr std::size_t n = 32;
  const bytes big = pattern(16 << 20, 4);  // outlives the runtime: valid until on_sent
  std::atomic<std::size_t> sent{0};
  std::mutex mu;
  std::condition_variable cv;
  {
    runtime rt;
    auto c = connect_sync(rt, peer.port, ident("worker", 0), shm_caps(), recording(&log, &box));
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(settle(*c, box));
    for (std::size_t i = 0; i < n; ++i) {
      auto o = shm_message(i, big);
      o.on_sent = [&](const status&) {
        std::lock_guard<std::mutex> g(mu);
        ++sent;
        cv.notify_all();
      };
      (*c)->send(std::move(o));
    }
    ASSERT_TRUE(box.pop()) << "the peer echoed the first one: it is receiving";
    peer.proc.signal(SIGKILL);
    ASSERT_TRUE(log.wait_closes(1));
    EXPECT_EQ(log.close_status(0).code(), errc::peer_lost) << log.close_status(0).to_string();
    {
      std::unique_lock<std::mutex> l(mu);
      EXPECT_TRUE(cv.wait_for(l, long_wait, [&] { return sent.load() == n; }))
          << "every on_sent ran";
    }
    EXPECT_EQ(rt.get_stats().shm_segments, 0u);
  }
  EXPECT_EQ(segments_here(), before);
}

}  // namespace
}  // namespace kvactor::net
