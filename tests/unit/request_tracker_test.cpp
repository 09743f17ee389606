// A worker's pending requests (actors/src/dist/request_tracker.*): parts of ops and control
// callbacks under one id space; a reply's id finds what it answers once; a node's loss fails
// everything pending with the loss's status, and everything tracked later fails at once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "dist/request_tracker.hpp"

namespace kvactor::detail {
namespace {

// What a user call's completion saw.
struct outcome {
  std::atomic<int> calls{0};
  status last;
};

// An op of `parts` parts whose call records its outcome in out.
dist_op_ptr op_of(std::size_t parts, outcome& out) {
  auto info = std::make_shared<key_info>();
  info->user_key = key{7};
  info->shape = shape{{4}};
  auto o = std::make_shared<dist_op>();
  o->info = info;
  o->call = std::make_shared<dist_call>(1, [&out](status s) {
    out.last = s;
    out.calls.fetch_add(1);
  });
  o->parts_left.reset(parts);
  return o;
}

TEST(RequestTracker, TrackThenCompleteEachPart) {
  outcome out;
  request_tracker t;
  auto o = op_of(2, out);
  auto a = t.track(o, 0), b = t.track(o, 1);
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(t.pending(), 2u);

  auto pa = t.take(*b);
  ASSERT_TRUE(pa.part.op);
  EXPECT_FALSE(pa.control);
  EXPECT_EQ(pa.part.op, o);
  EXPECT_EQ(pa.part.part, 1u);
  pa.part.op->part_done(status{});
  EXPECT_EQ(out.calls.load(), 0);  // one part still out

  auto pb = t.take_part(*a);
  ASSERT_TRUE(pb.op);
  EXPECT_EQ(pb.part, 0u);
  pb.op->part_done(status{});
  EXPECT_EQ(out.calls.load(), 1);
  EXPECT_TRUE(out.last.is_ok());
  EXPECT_EQ(t.pending(), 0u);
}

TEST(RequestTracker, UnknownOrAnsweredIdFindsNothing) {
  request_tracker t;
  auto none = t.take(12345);
  EXPECT_FALSE(none.part.op);
  EXPECT_FALSE(none.control);
  EXPECT_FALSE(t.take_part(12345).op);
  EXPECT_FALSE(t.take_control(12345));
  EXPECT_EQ(t.with_part(12345, [](const request_tracker::part_ref* p) { return p; }), nullptr);

  outcome out;
  auto o = op_of(1, out);
  auto id = t.track(o, 0);
  ASSERT_TRUE(id);
  EXPECT_NE(t.with_part(*id, [](const request_tracker::part_ref* p) { return p; }), nullptr);
  EXPECT_TRUE(t.take(*id).part.op);
  EXPECT_FALSE(t.take(*id).part.op);  // answered twice: the second finds nothing
  EXPECT_FALSE(t.take_control(*id));
}

TEST(RequestTracker, ControlsShareTheIdSpaceWithParts) {
  outcome out;  // outlives the tracker, whose pending op completes it when dropped
  request_tracker t;
  auto o = op_of(1, out);
  status got{errc::internal, "not called"};
  auto part = t.track(o, 0);
  auto ctl = t.track_control([&got](const status& s) { got = s; });
  ASSERT_TRUE(part && ctl);
  EXPECT_NE(*part, *ctl);
  EXPECT_FALSE(t.take_part(*ctl).op);  // a control id is not a part
  auto c = t.take(*ctl);
  ASSERT_TRUE(c.control);
  EXPECT_FALSE(c.part.op);
  c.control(status{errc::timeout, "late"});
  EXPECT_EQ(got.code(), errc::timeout);
  EXPECT_EQ(t.pending(), 1u);
}

TEST(RequestTracker, NodeLossFailsAllPendingWithItsStatus) {
  outcome o1, o2;
  request_tracker t;
  auto a = op_of(2, o1), b = op_of(1, o2);
  ASSERT_TRUE(t.track(a, 0) && t.track(a, 1) && t.track(b, 0));
  std::vector<status> ctl;
  ASSERT_TRUE(t.track_control([&ctl](const status& s) { ctl.push_back(s); }));
  const status lost{errc::peer_lost, "lost server 1 (127.0.0.1:9000): no heartbeat for 3 s"};
  int announced = 0;
  EXPECT_TRUE(t.fail_all(lost, [&] {
    ++announced;
    EXPECT_EQ(t.broken().code(), errc::peer_lost);  // broken before anything fails
  }));
  EXPECT_EQ(announced, 1);
  EXPECT_EQ(o1.calls.load(), 1);
  EXPECT_EQ(o1.last.code(), errc::peer_lost);
  EXPECT_EQ(o1.last.message(), lost.message());
  EXPECT_EQ(o2.calls.load(), 1);
  EXPECT_EQ(o2.last.message(), lost.message());
  ASSERT_EQ(ctl.size(), 1u);
  EXPECT_EQ(ctl[0].message(), lost.message());
  EXPECT_EQ(t.pending(), 0u);

  // A second loss changes nothing: the first one's status stays the cause.
  EXPECT_FALSE(t.fail_all(status{errc::peer_lost, "lost worker 0"}, [&] { ++announced; }));
  EXPECT_EQ(announced, 1);
  EXPECT_EQ(t.broken().message(), lost.message());
}

TEST(RequestTracker, RefusesToTrackOnceBroken) {
  request_tracker t;
  const status lost{errc::peer_lost, "lost the scheduler: connection closed by the peer"};
  EXPECT_TRUE(t.broken().is_ok());
  EXPECT_TRUE(t.fail_all(lost));
  outcome out;
  auto o = op_of(1, out);
  EXPECT_FALSE(t.track(o, 0));
  EXPECT_EQ(out.calls.load(), 1);  // failed at once
  EXPECT_EQ(out.last.message(), lost.message());
  status got;
  EXPECT_FALSE(t.track_control([&got](const status& s) { got = s; }));
  EXPECT_EQ(got.code(), errc::peer_lost);
  EXPECT_EQ(t.pending(), 0u);
}

// Senders track parts while a transport thread answers them and a node is lost midway:
// every op completes exactly once (answered, or failed by the loss or at tracking), and
// nothing stays pending.
TEST(RequestTracker, ConcurrentTrackAnswerAndLoss) {
  constexpr int senders = 4, ops_each = 3000;
  std::vector<outcome> outs(senders * ops_each);
  request_tracker t;
  std::atomic<int> tracked{0};
  std::atomic<bool> senders_done{false};
  std::vector<std::thread> ts;
  std::vector<std::vector<std::uint64_t>> ids(senders);
  for (int s = 0; s < senders; ++s)
    ts.emplace_back([&, s] {
      for (int i = 0; i < ops_each; ++i) {
        auto o = op_of(1, outs[s * ops_each + i]);
        if (t.track(o, 0)) tracked.fetch_add(1);
      }
    });
  // The answering thread: takes ids in order (they are dense from 1) until told to stop.
  std::thread answer([&] {
    std::uint64_t next = 1;
    while (!senders_done.load(std::memory_order_acquire) || t.pending() > 0) {
      auto p = t.take_part(next);
      if (p.op) {
        p.op->part_done(status{});
        ++next;
      } else if (!t.broken().is_ok()) {
        break;
      } else {
        std::this_thread::yield();
      }
      if (next == senders * ops_each / 2) t.fail_all(status{errc::peer_lost, "lost server 0"});
    }
  });
  for (auto& th : ts)
    th.join();
  senders_done.store(true, std::memory_order_release);
  answer.join();
  EXPECT_EQ(t.pending(), 0u);
  EXPECT_EQ(t.broken().code(), errc::peer_lost);
  int ok = 0, lost = 0;
  for (auto& o : outs) {
    ASSERT_EQ(o.calls.load(), 1);
    (o.last.is_ok() ? ok : lost)++;
  }
  EXPECT_EQ(ok + lost, senders * ops_each);
  EXPECT_GE(ok, senders * ops_each / 2 - 1);
  EXPECT_GT(lost, 0);
}

}  // namespace
}  // namespace kvactor::detail
