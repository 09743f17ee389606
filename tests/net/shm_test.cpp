// Shared memory between co-located ends, in one process: the same results as TCP (sizes around
// the threshold and the slice size, both ways, into the pool and into user memory), stream
// order under mixed priorities, fallback when the peer looks like another host or has it off,
// TLS, and no segment left behind.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "shm_util.hpp"

namespace kvactor::net {
namespace {

using namespace testing;

bool shm_possible() {
  return detail::shm_allowed_by_environment() && !detail::shm_host_token(0).empty();
}

// on: both ends have shared memory on; off: the acceptor has it off.
class SameResults : public ::testing::TestWithParam<bool> {};

TEST_P(SameResults, EverySizeBothWays) {
  const bool on = GetParam();
  if (on && !shm_possible()) GTEST_SKIP() << "KVACTOR_SHM is off, or no host token here";
  const std::size_t before = segments_here();
  const std::vector<std::size_t> sizes{
      0,       1, 4096, 65535, 65536, 65537, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (5 << 20) + 123,
      16 << 20};
  std::vector<bytes> payloads;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    payloads.push_back(pattern(sizes[i], i + 7));
  // Echoes of odd ids land in memory this test chose; the others in pooled buffers.
  std::vector<bytes> dest(sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i)
    dest[i].resize(sizes[i]);
  {
    event_log server_log;
    caps sc = shm_caps();
    sc.shared_memory = on;
    runtime server_rt{2};
    auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), sc, echoing(&server_log));
    ASSERT_TRUE(l);
    inbox box;
    runtime rt;
    handlers h = recording(nullptr, &box);
    h.payload_destination = [&dest](const connection_ptr&, const message_head& m) -> void* {
      if (m.id >= dest.size() || m.id % 2 == 0 || m.payload_size != dest[m.id].size())
        return nullptr;
      return dest[m.id].data();
    };
    auto c = connect_sync(rt, (*l)->port(), ident("worker", 1), shm_caps(), h);
    ASSERT_TRUE(c) << c.error().to_string();
    ASSERT_TRUE(settle(*c, box));
    for (std::size_t i = 0; i < sizes.size(); ++i)
      (*c)->send(shm_message(i, payloads[i], i % 3, static_cast<std::int32_t>(i % 4)));
    std::map<std::uint64_t, message> got;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      auto m = box.pop();
      ASSERT_TRUE(m) << "echo " << i << " missing";
      got.emplace(m->id, std::move(*m));
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      SCOPED_TRACE(sizes[i]);
      ASSERT_EQ(got.count(i), 1u);
      const message& m = got.at(i);
      EXPECT_EQ(to_string(m.meta), "m" + std::to_string(i));
      EXPECT_EQ(m.stream, i % 3);
      ASSERT_EQ(m.payload_size, sizes[i]);
      if (sizes[i] == 0) continue;
      if (i % 2 == 1) {
        EXPECT_EQ(m.payload_data, dest[i].data());
      }
      EXPECT_EQ(std::memcmp(m.payload_data, payloads[i].data(), sizes[i]), 0);
    }
    const auto cs = rt.get_stats();
    const auto ss = server_rt.get_stats();
    std::uint64_t big = 0;
    for (auto n : sizes)
      if (n >= shm_caps().shm_min_payload) big += n;
    if (on) {
      EXPECT_EQ(cs.shm_segments, 2u) << "its own and the server's";
      EXPECT_EQ(ss.shm_segments, 2u);
      // Every slice of the big ones, unless a slot was busy (then that slice took TCP).
      EXPECT_GT(cs.shm_bytes_sent, big / 2);
      EXPECT_LE(cs.shm_bytes_sent, big);
      EXPECT_GT(ss.shm_bytes_sent, big / 2);
      EXPECT_EQ(cs.shm_bytes_sent, ss.shm_bytes_received);
      EXPECT_EQ(ss.shm_bytes_sent, cs.shm_bytes_received);
    } else {
      EXPECT_EQ(cs.shm_segments, 0u) << "the offer was declined and its segment dropped";
      EXPECT_EQ(ss.shm_segments, 0u);
      EXPECT_EQ(cs.shm_bytes_sent + cs.shm_bytes_received, 0u);
    }
  }
  EXPECT_EQ(segments_here(), before) << "no descriptor nor mapping of a segment remains";
}

INSTANTIATE_TEST_SUITE_P(ShmOnOff, SameResults, ::testing::Values(true, false),
                         [](const auto& i) { return i.param ? "shm" : "tcp"; });

TEST(Shm, StreamOrderUnderMixedPrioritiesAndPaths) {
  if (!shm_possible()) GTEST_SKIP() << "KVACTOR_SHM is off, or no host token here";
  // 300 messages on 5 streams, random priorities, sizes on both sides of the threshold: each
  // stream arrives in the order it was sent, whichever way each slice travelled.
  const std::vector<std::size_t> sizes{100, 70 * 1024, (3 << 20) / 2};
  std::vector<bytes> payloads;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    payloads.push_back(pattern(sizes[i], 40 + i));
  inbox server_box;
  runtime server_rt{2};
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), shm_caps(),
                            recording(nullptr, &server_box));
  ASSERT_TRUE(l);
  event_log client_log;
  inbox client_box;
  runtime rt;
  auto c = connect_sync(rt, (*l)->port(), ident("worker", 0), shm_caps(),
                        recording(&client_log, &client_box));
  ASSERT_TRUE(c);
  std::mt19937 rng(7);
  constexpr std::size_t n = 300;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = rng() % sizes.size();
    (*c)->send(shm_message(i, payloads[k], rng() % 5, static_cast<std::int32_t>(rng() % 7) - 3));
  }
  std::map<std::uint64_t, std::uint64_t> last;  // stream -> last id seen
  for (std::size_t i = 0; i < n; ++i) {
    auto m = server_box.pop();
    ASSERT_TRUE(m) << "message " << i << " missing";
    auto it = last.find(m->stream);
    if (it != last.end()) {
      EXPECT_LT(it->second, m->id) << "stream " << m->stream;
    }
    last[m->stream] = m->id;
    const auto& want = payloads[m->payload_size == sizes[0]   ? 0
                                : m->payload_size == sizes[1] ? 1
                                                              : 2];
    ASSERT_EQ(m->payload_size, want.size());
    EXPECT_EQ(std::memcmp(m->payload_data, want.data(), want.size()), 0);
  }
  EXPECT_GT(rt.get_stats().shm_bytes_sent, 0u);
  EXPECT_EQ(rt.get_stats().shm_bytes_sent, server_rt.get_stats().shm_bytes_received);
}

// A peer whose host token differs (as in another network namespace) or that has shared
// memory off: TCP, the same bytes, no segment kept.
struct fallback_case {
  const char* name;
  std::uint64_t server_salt;
  bool server_on;
  bool client_on;
};

class Fallback : public ::testing::TestWithParam<fallback_case> {};

TEST_P(Fallback, UsesTcpAndKeepsNoSegment) {
  const auto& p = GetParam();
  const std::size_t before = segments_here();
  const bytes big = pattern(4 << 20, 3);
  {
    caps sc = shm_caps();
    sc.shm_host_salt = p.server_salt;
    sc.shared_memory = p.server_on;
    caps cc = shm_caps();
    cc.shared_memory = p.client_on;
    runtime server_rt{2};
    auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), sc, echoing(nullptr));
    ASSERT_TRUE(l);
    inbox box;
    runtime rt;
    auto c = connect_sync(rt, (*l)->port(), ident("worker", 0), cc, recording(nullptr, &box));
    ASSERT_TRUE(c);
    ASSERT_TRUE(settle(*c, box));
    for (std::uint64_t i = 0; i < 3; ++i)
      (*c)->send(shm_message(i, big));
    for (std::uint64_t i = 0; i < 3; ++i) {
      auto m = box.pop();
      ASSERT_TRUE(m);
      EXPECT_EQ(m->id, i);
      ASSERT_EQ(m->payload_size, big.size());
      EXPECT_EQ(std::memcmp(m->payload_data, big.data(), big.size()), 0);
    }
    for (const auto& s : {rt.get_stats(), server_rt.get_stats()}) {
      EXPECT_EQ(s.shm_segments, 0u);
      EXPECT_EQ(s.shm_bytes_sent, 0u);
      EXPECT_EQ(s.shm_bytes_received, 0u);
    }
  }
  EXPECT_EQ(segments_here(), before);
}

INSTANTIATE_TEST_SUITE_P(Shm, Fallback,
                         ::testing::Values(fallback_case{"another_host", 7, true, true},
                                           fallback_case{"off_at_the_acceptor", 0, false, true},
                                           fallback_case{"off_at_the_connector", 0, true, false}),
                         [](const auto& i) { return std::string{i.param.name}; });

TEST(Shm, WorksUnderTls) {
  if (!shm_possible()) GTEST_SKIP() << "KVACTOR_SHM is off, or no host token here";
  auto tls_ident = [](std::string role, std::int64_t rank) {
    identity id = ident(std::move(role), rank);
    id.tls = true;
    return id;
  };
  const bytes big = pattern(8 << 20, 5);
  runtime server_rt{2};
  auto l = server_rt.listen("127.0.0.1", 0, tls_ident("server", 0), shm_caps(), echoing(nullptr));
  ASSERT_TRUE(l) << l.error().to_string();
  inbox box;
  runtime rt;
  auto c =
      connect_sync(rt, (*l)->port(), tls_ident("worker", 0), shm_caps(), recording(nullptr, &box));
  ASSERT_TRUE(c) << c.error().to_string();
  ASSERT_TRUE(settle(*c, box));
  (*c)->send(shm_message(1, big));
  auto m = box.pop();
  ASSERT_TRUE(m);
  ASSERT_EQ(m->payload_size, big.size());
  EXPECT_EQ(std::memcmp(m->payload_data, big.data(), big.size()), 0);
  EXPECT_GE(rt.get_stats().shm_bytes_sent, big.size() / 2);
  EXPECT_GE(rt.get_stats().shm_bytes_received, big.size() / 2);
}

TEST(Shm, SegmentsGoWithTheirConnection) {
  if (!shm_possible()) GTEST_SKIP() << "KVACTOR_SHM is off, or no host token here";
  const std::size_t before = segments_here();
  const bytes big = pattern(2 << 20, 8);
  event_log server_log, client_log;
  runtime server_rt{2};
  auto l = server_rt.listen("127.0.0.1", 0, ident("server", 0), shm_caps(), echoing(&server_log));
  ASSERT_TRUE(l);
  runtime rt;
  for (int round = 0; round < 3; ++round) {
    inbox box;
    handlers h = recording(&client_log, &box);
    auto c = connect_sync(rt, (*l)->port(), ident("worker", round), shm_caps(), h);
    ASSERT_TRUE(c);
    ASSERT_TRUE(settle(*c, box));
    (*c)->send(shm_message(1, big));
    ASSERT_TRUE(box.pop());
    EXPECT_EQ(rt.get_stats().shm_segments, 2u);
    // Each end's own segment is a mapping only once the peer has answered; the peer's one
    // too: two mappings per end, no descriptor.
    EXPECT_EQ(segments_here(), before + 4);
    (*c)->close(status::ok());
    ASSERT_TRUE(server_log.wait_closes(static_cast<std::size_t>(round) + 1));
    ASSERT_TRUE(client_log.wait_closes(static_cast<std::size_t>(round) + 1));
    EXPECT_EQ(rt.get_stats().shm_segments, 0u);
    EXPECT_EQ(server_rt.get_stats().shm_segments, 0u);
    EXPECT_EQ(segments_here(), before);
  }
}

}  // namespace
}  // namespace kvactor::net
