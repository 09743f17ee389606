// Pushes summed into a dist_sync round as their bytes arrive (actors/src/dist/push_intake.*,
// server_core::open_intake), without sockets: a push_sink is fed slices as the transport would
// and hands the push back to the core. Exact sums whatever the slices and their interleaving;
// the ordinary rules (a pull sees the old value until the round closes, a worker's second push
// waits for the next round); a push cut off mid-payload fails its round and leaves the value.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>

#include "../support/push_streams.hpp"

namespace kvactor::detail {
namespace {

using namespace testing;

constexpr std::size_t n = elements;

TEST(PushIntake, InterleavedStreamsSumExactlyAndPullsSeeTheOldValueMeanwhile) {
  reply_log log;
  server_core core(3);
  const tensor init = full(100);
  core.handle(whole(log, wire::msg::init, 0, init));
  const tensor a = ramp(n, 0.5, 1), b = ramp(n, 2, -3), c = ramp(n, 1, 7);
  auto s0 = open_push(core, log, 0, a);
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s0.sink && s1.sink);
  // Odd slice sizes, both ways ahead of each other; elements cut between slices.
  const std::size_t steps0[] = {1001, 3, 2999, 5, 4096, 7};
  const std::size_t steps1[] = {3, 4000, 1, 1, 6001, 2};
  for (int round = 0; !s0.done() || !s1.done(); ++round) {
    s0.send(steps0[round % 6]);
    s1.send(steps1[round % 6]);
    if (round == 2) expect_sum(pull_now(core, log, 2, n), {init}, "worker 2's pull mid-stream");
  }
  // Worker 2's push arrives whole while the two still stream: it waits for them.
  core.handle(whole(log, wire::msg::push, 2, c));
  s0.sink->finish();
  EXPECT_EQ(log.events.size(), 1u) << "nothing answered before the round closes";
  s1.sink->finish();
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"w0:init:ok", "w0:push:ok", "w1:push:ok", "w2:push:ok"}));
  expect_sum(pull_now(core, log, 2, n), {a, b, c}, "after the round");
}

TEST(PushIntake, AFirstPushReceivedWholeIsSummedInto) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(1)));
  const tensor a = ramp(n, 3, 1), b = ramp(n, -1, 4);
  core.handle(whole(log, wire::msg::push, 1, b));  // adopted as the merge buffer
  auto s0 = open_push(core, log, 0, a, wire::msg::pushpull);
  ASSERT_TRUE(s0.sink);
  s0.send(777);
  s0.send_rest();
  s0.sink->finish();
  EXPECT_EQ(log.events.back(),
            "w0:pushpull:ok=" + std::to_string(static_cast<int>(a.at(0) + b.at(0))));
  expect_sum(pull_now(core, log, 1, n), {a, b}, "adopted + streamed");
}

TEST(PushIntake, AWholePushWaitsForTheStreamsThenAdds) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(1)));
  const tensor a = ramp(n, 1, 2), b = ramp(n, 5, -1);
  auto s0 = open_push(core, log, 0, a);
  ASSERT_TRUE(s0.sink);
  s0.send(5000);
  core.handle(whole(log, wire::msg::push, 1, b));
  EXPECT_EQ(log.events.size(), 1u) << "only the init is answered";
  s0.send_rest();
  s0.sink->finish();
  EXPECT_EQ(log.events, (std::vector<std::string>{"w0:init:ok", "w0:push:ok", "w1:push:ok"}));
  expect_sum(pull_now(core, log, 0, n), {a, b}, "streamed + whole");
}

TEST(PushIntake, AWorkersSecondPushWaitsForTheNextRound) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(0)));
  const tensor a = ramp(n, 1, 0), b = ramp(n, 2, 0), a2 = ramp(n, 1, 10), b2 = ramp(n, 3, 3);
  ASSERT_TRUE(stream_push(core, log, 0, a));
  // Worker 0 is in the open round: its next push may not stream into it.
  auto again = open_push(core, log, 0, a2);
  EXPECT_FALSE(again.sink);
  core.handle(whole(log, wire::msg::push, 0, a2));  // waits for round 2
  ASSERT_TRUE(
      stream_push(core, log, 1, b));  // round 1 closes; worker 0's second push opens round 2
  EXPECT_EQ(log.events, (std::vector<std::string>{"w0:init:ok", "w0:push:ok", "w1:push:ok"}));
  expect_sum(pull_now(core, log, 1, n), {a, b}, "round 1");
  ASSERT_TRUE(stream_push(core, log, 1, b2));
  expect_sum(pull_now(core, log, 1, n), {a2, b2}, "round 2");
}

TEST(PushIntake, APushCutOffMidPayloadFailsTheRoundAndLeavesTheValue) {
  reply_log log;
  server_core core(2);
  const tensor init = full(7);
  core.handle(whole(log, wire::msg::init, 0, init));
  const tensor a = ramp(n, 1, 1), b = ramp(n, 2, 2);
  auto s0 = open_push(core, log, 0, a);
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s0.sink && s1.sink);
  s0.send(4001);
  s1.send(6000);  // over what worker 0 wrote: partly summed, partly first
  s0.sink->abort(status{errc::peer_lost, "connection reset by the peer"});
  s1.send_rest();
  s1.sink->finish();
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[1], "w0:push:aborted");
  EXPECT_EQ(log.events[2], "w1:push:aborted");
  EXPECT_NE(log.messages[2].find("worker 0's push was cut off"), std::string::npos)
      << log.messages[2];
  EXPECT_NE(log.messages[2].find("4001 of 12000 bytes"), std::string::npos) << log.messages[2];
  EXPECT_NE(log.messages[2].find("unchanged"), std::string::npos) << log.messages[2];
  expect_sum(pull_now(core, log, 0, n), {init}, "value after the failed round");
  // The next round is a fresh one.
  core.handle(whole(log, wire::msg::push, 0, a));
  ASSERT_TRUE(stream_push(core, log, 1, b));
  expect_sum(pull_now(core, log, 0, n), {a, b}, "the round after");
}

TEST(PushIntake, APayloadThatEndsShortFailsTheRound) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(7)));
  auto s0 = open_push(core, log, 0, ramp(n, 1, 1));
  ASSERT_TRUE(s0.sink);
  s0.send(100);
  s0.sink->finish();  // a broken transport's doing: never a half value
  core.handle(whole(log, wire::msg::push, 1, ramp(n, 1, 1)));
  EXPECT_EQ(log.events.back(), "w1:push:aborted");
  EXPECT_NE(log.messages.back().find("ended after 100 of 12000 bytes"), std::string::npos)
      << log.messages.back();
  expect_sum(pull_now(core, log, 0, n), {full(7)}, "value");
}

TEST(PushIntake, TheIntakeRefusesAWriterAheadOfEveryOther) {
  round_intake in(tensor::zeros(shape{8}), 0);
  const float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  in.add(0, v, 3);
  EXPECT_THROW(in.add(4, v, 1), std::logic_error);
  EXPECT_THROW(in.add(2, v, 7), std::logic_error);
  in.add(0, v, 8);
  EXPECT_EQ(in.ready(), 8u);
  EXPECT_EQ(in.merge().at(2), 6.0);  // summed
  EXPECT_EQ(in.merge().at(5), 6.0);  // first
}

TEST(PushIntake, WhereTheRoundCannotTakeAStreamItSaysWhen) {
  using answer = server_core::intake_answer;
  reply_log log;
  auto ask = [&log](server_core& core, std::int64_t w, const tensor& value) {
    auto r = request(log, wire::msg::push, w, 1, {}, static_cast<std::uint32_t>(value.size()));
    r->meta.dtype = static_cast<std::uint8_t>(value.dtype());
    return core.open_intake(r);
  };
  {
    server_core one(1);  // a single worker: adopting the received buffer is cheaper
    one.handle(whole(log, wire::msg::init, 0, full(0)));
    EXPECT_EQ(ask(one, 0, ramp(n, 1, 0)), answer::refused);
  }
  server_core core(2);
  EXPECT_EQ(ask(core, 0, ramp(n, 1, 0)), answer::refused) << "not initialized";
  core.handle(whole(log, wire::msg::init, 0, full(0)));
  EXPECT_EQ(ask(core, 0, ramp(n + 1, 1, 0)), answer::refused) << "another shape";
  EXPECT_EQ(ask(core, 0, ramp(n, 1, 0, dtype::float64)), answer::refused) << "another type";
  EXPECT_EQ(ask(core, 7, ramp(n, 1, 0)), answer::refused) << "an unknown worker";
  // Worker 0's push is in the round: its next one belongs to the next round.
  core.handle(whole(log, wire::msg::push, 0, ramp(n, 1, 0)));
  EXPECT_EQ(ask(core, 0, ramp(n, 1, 0)), answer::after_round);
  // A round with a refused push will fail once every worker pushed: it needs this push whole
  // (it must not wait for the round it completes); the round after may take a stream.
  server_core three(3);
  three.handle(whole(log, wire::msg::init, 0, full(0)));
  auto refused = whole(log, wire::msg::push, 1, ramp(n, 1, 0));
  refused->rejected = status{errc::protocol_error, "bad payload"};
  three.handle(refused);
  EXPECT_EQ(ask(three, 2, ramp(n, 1, 0)), answer::refused);
  three.handle(whole(log, wire::msg::push, 0, ramp(n, 1, 0)));
  three.handle(whole(log, wire::msg::push, 2, ramp(n, 1, 0)));  // the round fails
  EXPECT_EQ(log.events.back(), "w2:push:aborted");
  EXPECT_EQ(ask(three, 2, ramp(n, 1, 0)), answer::opened) << "the round after the failed one";
  core.set_sync(false);
  EXPECT_EQ(ask(core, 1, ramp(n, 1, 0)), answer::refused) << "dist_async";
}

TEST(PushIntake, NodeLossAndDepartureWhileStreamingAnswerThePush) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(5)));
  auto s0 = open_push(core, log, 0, ramp(n, 1, 1));
  ASSERT_TRUE(s0.sink);
  s0.send(1000);
  core.fail_all(status{errc::peer_lost, "worker 1 lost"});
  EXPECT_EQ(log.events.back(), "w0:push:peer_lost");
  s0.send_rest();
  s0.sink->finish();  // its round is gone: nothing more
  EXPECT_EQ(log.events.size(), 2u);
  // A worker that leaves without pushing fails the round its streaming peer is in, once that
  // push has arrived (as it would if it had come whole).
  auto s1 = open_push(core, log, 0, ramp(n, 1, 1));
  ASSERT_TRUE(s1.sink);
  s1.send(1000);
  core.worker_left(1);
  EXPECT_EQ(log.events.size(), 2u);
  s1.send_rest();
  s1.sink->finish();
  EXPECT_EQ(log.events.back(), "w0:push:aborted");
  EXPECT_NE(log.messages.back().find("worker 1 left"), std::string::npos) << log.messages.back();
  expect_sum(pull_now(core, log, 0, n), {full(5)}, "value");
}

TEST(PushIntake, TheUpdaterRunsOnceOnTheStreamedSum) {
  reply_log log;
  server_core core(2);
  int calls = 0;
  core.set_updater(make_updater([&](const key&, const tensor& merged, tensor& stored) {
    ++calls;
    auto* s = stored.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] -= 0.25f * merged.cdata<float>()[i];
  }));
  core.handle(whole(log, wire::msg::init, 0, full(10)));
  auto s0 = open_push(core, log, 0, full(4));
  auto s1 = open_push(core, log, 1, full(8));
  ASSERT_TRUE(s0.sink && s1.sink);
  s1.send(999);
  s0.send_rest();
  s1.send_rest();
  s1.sink->finish();
  s0.sink->finish();
  EXPECT_EQ(calls, 1);
  expect_sum(pull_now(core, log, 0, n), {full(7)}, "10 - 0.25 * 12");
}

}  // namespace
}  // namespace kvactor::detail
