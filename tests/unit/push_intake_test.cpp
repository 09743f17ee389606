// Pushes summed into a dist_sync round as their bytes arrive (actors/src/dist/push_intake.*,
// server_core::open_intake), without sockets: a push_sink is fed slices as the transport would
// and hands the push back to the core. Exact sums whatever the slices and their interleaving;
// the ordinary rules (a pull sees the old value until the round closes, a worker's second push
// waits for the next round); a push cut off mid-payload fails its round and leaves the value.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "../support/server_requests.hpp"
#include "dist/push_intake.hpp"

namespace kvactor::detail {
namespace {

using testing::fill4;
using testing::reply_log;
using testing::request;

constexpr std::size_t n = 3000;

// {v, v, ...} of n elements (or m).
tensor full(double v, dtype t = dtype::float32, std::size_t m = n) {
  return tensor::full(shape{static_cast<std::int64_t>(m)}, v, t);
}

// One push of `values` as its bytes would arrive, through the sink the server opened for it.
struct streamed {
  server_request_ptr r;
  std::shared_ptr<push_sink> sink;
  std::vector<std::uint8_t> bytes;
  std::size_t sent = 0;

  // Offers the next n bytes: true when the sink took them.
  bool send(std::size_t n) {
    n = std::min(n, bytes.size() - sent);
    if (!sink->consume(sent, bytes.data() + sent, n)) return false;
    sent += n;
    return true;
  }
  void send_rest() {
    while (sent < bytes.size())
      send(1 << 20);
  }
  bool done() const { return sent == bytes.size(); }
};

// Opens a stream for worker w's push of `value` to key 1 (null sink: the core said no).
streamed open_push(server_core& core, reply_log& log, std::int64_t w, const tensor& value,
                   wire::msg kind = wire::msg::push) {
  streamed s;
  s.r = request(log, kind, w, 1, {}, static_cast<std::uint32_t>(value.size()));
  s.r->meta.dtype = static_cast<std::uint8_t>(value.dtype());
  s.bytes.resize(value.nbytes());
  std::memcpy(s.bytes.data(), value.data_unchecked(), value.nbytes());
  if (core.open_intake(s.r) == server_core::intake_answer::opened)
    s.sink = std::make_shared<push_sink>(
        s.r, [&core](server_request_ptr d) { core.handle(std::move(d)); });
  return s;
}

server_request_ptr whole(reply_log& log, wire::msg kind, std::int64_t w, const tensor& value) {
  auto r = request(log, kind, w, 1, {}, static_cast<std::uint32_t>(value.size()));
  r->meta.dtype = static_cast<std::uint8_t>(value.dtype());
  r->payload = value.copy();
  return r;
}

// The whole value a pull by worker w gets (undefined if it was not answered at once).
tensor pull_now(server_core& core, reply_log& log, std::int64_t w, std::size_t m,
                dtype t = dtype::float32) {
  tensor got;
  auto r = request(log, wire::msg::pull, w, 1, {}, static_cast<std::uint32_t>(m));
  r->meta.dtype = static_cast<std::uint8_t>(t);
  r->reply = [&got](const status& s, const tensor* v) {
    if (s.is_ok() && v) got = v->copy();
  };
  core.handle(r);
  return got;
}

tensor ramp(std::size_t m, double scale, double offset, dtype t = dtype::float32) {
  tensor x = tensor::zeros(shape{static_cast<std::int64_t>(m)}, t);
  for (std::size_t i = 0; i < m; ++i)
    x.set(i, scale * static_cast<double>(i % 100) + offset);
  return x;
}

void expect_sum(const tensor& got, const std::vector<tensor>& parts, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << ": no value";
  for (std::size_t i = 0; i < got.size(); ++i) {
    double want = 0;
    for (const auto& p : parts)
      want += p.at(i);
    ASSERT_EQ(got.at(i), want) << what << " at " << i;
  }
}

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
  auto s0 = open_push(core, log, 0, a);
  ASSERT_TRUE(s0.sink);
  s0.send_rest();
  s0.sink->finish();
  // Worker 0 is in the open round: its next push may not stream into it.
  auto again = open_push(core, log, 0, a2);
  EXPECT_FALSE(again.sink);
  core.handle(whole(log, wire::msg::push, 0, a2));  // waits for round 2
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s1.sink);
  s1.send_rest();
  s1.sink->finish();  // round 1 closes; worker 0's second push opens round 2
  EXPECT_EQ(log.events, (std::vector<std::string>{"w0:init:ok", "w0:push:ok", "w1:push:ok"}));
  expect_sum(pull_now(core, log, 1, n), {a, b}, "round 1");
  auto t1 = open_push(core, log, 1, b2);
  ASSERT_TRUE(t1.sink);
  t1.send_rest();
  t1.sink->finish();
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
  auto t1 = open_push(core, log, 1, b);
  ASSERT_TRUE(t1.sink);
  t1.send_rest();
  t1.sink->finish();
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
  // A round with a refused push will fail: the one after may take a stream.
  server_core three(3);
  three.handle(whole(log, wire::msg::init, 0, full(0)));
  auto refused = whole(log, wire::msg::push, 1, ramp(n, 1, 0));
  refused->rejected = status{errc::protocol_error, "bad payload"};
  three.handle(refused);
  EXPECT_EQ(ask(three, 2, ramp(n, 1, 0)), answer::after_round);
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
  auto t1 = open_push(core, log, 1, b2);
  ASSERT_TRUE(t1.sink);
  t1.send_rest();
  t1.sink->finish();  // round 2 closes; worker 0's whole push opens round 3
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
  auto s0 = open_push(core, log, 0, a);
  ASSERT_TRUE(s0.sink);
  s0.send_rest();
  s0.sink->finish();
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
  auto s1 = open_push(core, log, 1, b);
  ASSERT_TRUE(s1.sink);
  s1.send_rest();
  s1.sink->finish();  // round 1 closes
  expect_sum(pull_now(core, log, 1, n), {a, b}, "round 1");
  EXPECT_TRUE(next.send(1 << 20)) << "round 2 takes it";
  next.send_rest();
  next.sink->finish();
  auto t1 = open_push(core, log, 1, b2);
  ASSERT_TRUE(t1.sink);
  t1.send_rest();
  t1.sink->finish();
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
