// Big payload slices are read once they are all in (the kernel wakes the read for the whole
// slice, wire::wake_after): a slice that trickles in for longer than the peer timeout still
// counts as a live peer, arrives whole, and a small message after it is read at once.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "net_test_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

constexpr std::uint8_t app_type = 30;

caps slow_caps() {
  caps c;
  c.max_slice_bytes = 1 << 20;
  c.frame_timeout = 20000ms;  // a slow frame is allowed; only silence is not
  c.heartbeat_interval = 100ms;
  c.peer_timeout = 300ms;
  return c;
}

fr::frame_header whole_frame(std::uint64_t id, std::uint32_t size) {
  fr::frame_header h;
  h.type = app_type;
  h.id = id;
  h.total_size = size;
  h.slice_size = size;
  h.flags = fr::frame_flags::first | fr::frame_flags::last;
  return h;
}

bool same_payload(const message& m, const bytes& want) {
  return m.payload_size == want.size() && m.payload_data &&
         std::memcmp(m.payload_data, want.data(), want.size()) == 0;
}

// A listener with slow_caps() and a raw peer authenticated to it.
struct SlowSlice : ::testing::Test {
  // Declared before the runtime: handlers may run until the runtime is destroyed.
  event_log log;
  inbox box;
  runtime rt{1};
  std::shared_ptr<listener> server;
  raw_socket s;

  void SetUp() override {
    auto l = rt.listen("127.0.0.1", 0, ident("server", 0), slow_caps(), recording(&log, &box));
    ASSERT_TRUE(l) << l.error().to_string();
    server = *l;
    s = raw_socket::connect_to(server->port());
    ASSERT_TRUE(s.valid());
    ASSERT_TRUE(raw_authenticate(s, ident("worker", 1)));
  }
};

TEST_F(SlowSlice, ASliceTricklingInLongerThanThePeerTimeoutKeepsTheConnection) {
  // 512 KiB in 16 KiB pieces 40 ms apart: ~1.3 s, four peer timeouts, with bytes arriving all
  // along but the slice incomplete until the end. The pacing is the slow peer, not a wait.
  const bytes big = pattern(512 << 10, 3);
  constexpr std::size_t piece = 16 << 10;
  ASSERT_TRUE(s.send_frame(whole_frame(1, static_cast<std::uint32_t>(big.size()))));
  for (std::size_t at = 0; at < big.size(); at += piece) {
    ASSERT_TRUE(s.send_bytes(big.data() + at, piece));
    std::this_thread::sleep_for(40ms);
  }
  auto got = box.pop();
  ASSERT_TRUE(got) << "the slow slice never arrived";
  EXPECT_EQ(got->id, 1u);
  EXPECT_TRUE(same_payload(*got, big));
  EXPECT_EQ(log.closes(), 0u) << log.close_status(0).to_string();

  // The read waits for one byte again: a small message right after is delivered at once,
  // well inside the peer timeout that would otherwise close the silent raw peer.
  const bytes small = pattern(10, 4);
  ASSERT_TRUE(s.send_frame(whole_frame(2, 10), {}, small));
  auto next = box.pop(slow_caps().peer_timeout);
  ASSERT_TRUE(next) << "a small message after a big slice was not read";
  EXPECT_EQ(next->id, 2u);
  EXPECT_TRUE(same_payload(*next, small));
}

TEST_F(SlowSlice, APeerSilentInTheMiddleOfABigSliceIsStillDropped) {
  ASSERT_TRUE(s.send_frame(whole_frame(1, 512 << 10)));
  ASSERT_TRUE(s.send_bytes(pattern(64 << 10, 5)));  // then nothing more

  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(log.wait_closes(1));
  const auto took = std::chrono::steady_clock::now() - t0;
  const auto st = log.close_status(0);
  EXPECT_EQ(st.code(), errc::timeout) << st.to_string();
  EXPECT_NE(st.message().find("no heartbeat"), std::string::npos) << st.to_string();
  EXPECT_LT(took, 5 * slow_caps().peer_timeout) << "unread bytes that stopped coming are no sign";
  EXPECT_EQ(box.size(), 0u);
}

}  // namespace
}  // namespace kvactor::net
