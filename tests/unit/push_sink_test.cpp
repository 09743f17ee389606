// The push sink's own rules (actors/src/dist/push_intake.*), without sockets: slices out of order
// refused, elements cut between slices and misaligned ones, every dense element type; a sink
// made while its shard was busy, or for a push of the next round, declines (the transport holds
// the connection back) until the round takes the push, or gathers it whole after its patience;
// a push cut off before its round took it is forgotten, as one that never arrived.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "../support/push_streams.hpp"

namespace kvactor::detail {
namespace {

using namespace testing;

constexpr std::size_t n = elements;

TEST(PushIntake, SlicesOutOfOrderOrPastTheEndAreRefusedBySink) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(0, dtype::float32, 4)));
  auto s0 = open_push(core, log, 0, full(1, dtype::float32, 4));
  ASSERT_TRUE(s0.sink);
  std::uint8_t bytes[32] = {};
  EXPECT_THROW(s0.sink->consume(4, bytes, 4), std::logic_error);
  EXPECT_THROW(s0.sink->consume(0, bytes, 17), std::logic_error);
  // The transport closes the connection on a throw, and aborts the sink.
  s0.sink->abort(status{errc::internal, "a payload sink threw"});
  core.handle(whole(log, wire::msg::push, 1, full(1, dtype::float32, 4)));
  EXPECT_EQ(log.events.back(), "w1:push:aborted");
}

// A sink made while its shard was busy: it declines until the round takes the push, then
// streams; one the round refuses on a later ask takes the push whole, as an ordinary push.
TEST(PushIntake, APendingSinkStreamsOnceItsShardAnswers) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(0)));
  const tensor a = ramp(n, 1, 1), b = ramp(n, 2, 1), a2 = ramp(n, 3, 0), b2 = ramp(n, 1, 9);
  auto open_when = [&core](int busy_for) {
    auto left = std::make_shared<int>(busy_for);
    return [&core, left](const server_request_ptr& r) {
      if ((*left)-- > 0) return push_sink::open_result::busy;
      return core.open_intake(r) == server_core::intake_answer::opened
                 ? push_sink::open_result::opened
                 : push_sink::open_result::refused;
    };
  };
  auto deliver = [&core](server_request_ptr d) { core.handle(std::move(d)); };
  streamed s0;
  s0.r = request(log, wire::msg::push, 0, 1, {}, n);
  s0.bytes.resize(a.nbytes());
  std::memcpy(s0.bytes.data(), a.data_unchecked(), a.nbytes());
  s0.sink = std::make_shared<push_sink>(s0.r, deliver, open_when(2));
  EXPECT_FALSE(s0.send(5000));
  EXPECT_FALSE(s0.send(5000));
  EXPECT_TRUE(s0.send(5000)) << "the third ask opens it";
  EXPECT_TRUE(s0.r->intake);
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s1.sink);
  s0.send_rest();
  s1.send_rest();
  s0.sink->finish();
  s1.sink->finish();
  expect_sum(pull_now(core, log, 0, n), {a, b}, "pending, then streamed");
  // Worker 0 is in round 2 already (whole push): its next pending sink is refused on the
  // second ask and gathers its push whole, which then waits for round 3.
  core.handle(whole(log, wire::msg::push, 0, a2));
  streamed t0;
  t0.r = request(log, wire::msg::push, 0, 1, {}, n);
  t0.bytes.resize(a.nbytes());
  std::memcpy(t0.bytes.data(), a.data_unchecked(), a.nbytes());
  t0.sink = std::make_shared<push_sink>(t0.r, deliver, open_when(1));
  EXPECT_FALSE(t0.send(7));
  t0.send(7);
  t0.send_rest();
  EXPECT_FALSE(t0.r->intake);
  t0.sink->finish();  // whole: deferred behind worker 0's round-2 push
  ASSERT_TRUE(
      stream_push(core, log, 1, b2));  // round 2 closes; worker 0's whole push opens round 3
  expect_sum(pull_now(core, log, 1, n), {a2, b2}, "round 2");
  core.handle(whole(log, wire::msg::push, 1, b));
  expect_sum(pull_now(core, log, 1, n), {a, b}, "round 3, with the push gathered whole");
}

// D5: a worker's push for the next round is held back (declined) until its round opens,
// instead of arriving whole ahead of it.
TEST(PushIntake, APushForTheNextRoundWaitsForItsRound) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(0)));
  const tensor a = ramp(n, 1, 1), b = ramp(n, 2, 1), a2 = ramp(n, 3, 0), b2 = ramp(n, 1, 9);
  ASSERT_TRUE(stream_push(core, log, 0, a));
  streamed next;
  next.r = request(log, wire::msg::push, 0, 1, {}, n);
  next.bytes.resize(a2.nbytes());
  std::memcpy(next.bytes.data(), a2.data_unchecked(), a2.nbytes());
  next.sink = std::make_shared<push_sink>(
      next.r, [&core](server_request_ptr d) { core.handle(std::move(d)); },
      [&core](const server_request_ptr& r) {
        return core.open_intake(r) == server_core::intake_answer::opened
                   ? push_sink::open_result::opened
                   : push_sink::open_result::busy;
      });
  EXPECT_FALSE(next.send(1 << 20)) << "round 1 is still open";
  EXPECT_FALSE(next.send(1 << 20));
  ASSERT_TRUE(stream_push(core, log, 1, b));  // round 1 closes
  expect_sum(pull_now(core, log, 1, n), {a, b}, "round 1");
  EXPECT_TRUE(next.send(1 << 20)) << "round 2 takes it";
  next.send_rest();
  next.sink->finish();
  ASSERT_TRUE(stream_push(core, log, 1, b2));
  expect_sum(pull_now(core, log, 1, n), {a2, b2}, "round 2");
}

TEST(PushIntake, APendingSinkOutOfPatienceTakesThePushWhole) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(0)));
  const tensor a = ramp(n, 1, 1), b = ramp(n, 2, 1);
  streamed s0;
  s0.r = request(log, wire::msg::push, 0, 1, {}, n);
  s0.bytes.resize(a.nbytes());
  std::memcpy(s0.bytes.data(), a.data_unchecked(), a.nbytes());
  s0.sink = std::make_shared<push_sink>(
      s0.r, [&core](server_request_ptr d) { core.handle(std::move(d)); },
      [](const server_request_ptr&) { return push_sink::open_result::busy; });
  // The transport offers the slice again every caps::sink_retry until it is taken.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!s0.send(4000))
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "still declining";
  s0.send_rest();
  s0.sink->finish();
  core.handle(whole(log, wire::msg::push, 1, b));
  EXPECT_EQ(log.events, (std::vector<std::string>{"w0:init:ok", "w0:push:ok", "w1:push:ok"}));
  expect_sum(pull_now(core, log, 0, n), {a, b}, "gathered whole");
}

TEST(PushIntake, APushNotInItsRoundYetIsForgottenWhenCutOff) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(3)));
  std::vector<server_request_ptr> delivered;
  auto keep = [&delivered](server_request_ptr d) { delivered.push_back(std::move(d)); };
  const std::vector<std::uint8_t> bytes(n * 4);
  for (const auto answer : {push_sink::open_result::busy, push_sink::open_result::refused}) {
    auto r = request(log, wire::msg::push, 0, 1, {}, n);
    push_sink sink(r, keep, [answer](const server_request_ptr&) { return answer; });
    sink.consume(0, bytes.data(), 4000);
    sink.abort(status{errc::peer_lost, "gone"});
  }
  EXPECT_TRUE(delivered.empty()) << "like a push whose connection died before its last byte";
}

class Dtypes : public ::testing::TestWithParam<dtype> {};

TEST_P(Dtypes, StreamsOfEveryDenseTypeSumExactly) {
  const dtype t = GetParam();
  reply_log log;
  server_core core(2);
  const tensor init = full(0, t);
  core.handle(whole(log, wire::msg::init, 0, init));
  const tensor a = ramp(n, 1, 1, t), b = ramp(n, 1, 2, t);
  auto s0 = open_push(core, log, 0, a);
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s0.sink && s1.sink);
  // 3-byte slices cut every element of 2, 4 and 8 bytes somewhere.
  for (int i = 0; i < 500; ++i) {
    s0.send(3);
    s1.send(5);
  }
  s0.send_rest();
  s1.send_rest();
  s0.sink->finish();
  s1.sink->finish();
  EXPECT_EQ(log.events.back(), "w1:push:ok");
  expect_sum(pull_now(core, log, 0, n, t), {a, b}, to_string(t));
}

INSTANTIATE_TEST_SUITE_P(PushIntake, Dtypes, ::testing::ValuesIn(all_dtypes),
                         [](const auto& i) { return std::string{to_string(i.param)}; });

TEST(PushIntake, MisalignedSlicesAreBounced) {
  reply_log log;
  server_core core(2);
  core.handle(whole(log, wire::msg::init, 0, full(0)));
  const tensor a = ramp(n, 1, 1), b = ramp(n, 2, 1);
  auto s0 = open_push(core, log, 0, a);
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s0.sink && s1.sink);
  // The bytes from an odd address, as a peer's shared-memory slot might hold them.
  std::vector<std::uint8_t> shifted(s0.bytes.size() + 1);
  std::memcpy(shifted.data() + 1, s0.bytes.data(), s0.bytes.size());
  s0.sink->consume(0, shifted.data() + 1, 9001);
  s0.sink->consume(9001, shifted.data() + 1 + 9001, s0.bytes.size() - 9001);
  s1.send_rest();
  s0.sink->finish();
  s1.sink->finish();
  expect_sum(pull_now(core, log, 0, n), {a, b}, "misaligned");
}

}  // namespace
}  // namespace kvactor::detail
