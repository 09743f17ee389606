// dist_sync rounds that cannot complete (server_core, no sockets): a refused push is its
// worker's part of the round, which then fails for everyone with aborted naming the worker;
// a worker that said it pushes no more fails every round that lacks it. The value stays.
#include <gtest/gtest.h>

#include "../support/server_requests.hpp"

namespace kvactor::detail {
namespace {

using testing::reply_log;

server_request_ptr request(reply_log& log, wire::msg kind, std::int64_t worker,
                           std::vector<float> data, std::uint32_t numel = 4) {
  return testing::request(log, kind, worker, key{1}, std::move(data), numel);
}

std::vector<float> fill(float x, std::size_t n = 4) {
  return std::vector<float>(n, x);
}

TEST(RoundFailure, RefusedPushFailsTheRoundForEveryWorkerInIt) {
  reply_log log;
  server_core core(3);
  core.handle(request(log, wire::msg::init, 0, fill(7)));
  core.handle(request(log, wire::msg::push, 0, fill(1)));
  core.handle(request(log, wire::msg::push, 1, fill(1, 5), 5));  // wrong shape: refused at once
  EXPECT_EQ(log.events.back(), "w1:push:shape_mismatch");
  core.handle(request(log, wire::msg::pull, 1, {}));  // waits for the round worker 1 is in
  EXPECT_EQ(log.events.size(), 2u);
  core.handle(request(log, wire::msg::pushpull, 2, fill(1)));  // the round is complete: fails
  ASSERT_EQ(log.events.size(), 5u);
  EXPECT_EQ(log.events[2], "w0:push:aborted");
  EXPECT_EQ(log.events[3], "w2:pushpull:aborted");
  EXPECT_NE(log.messages[2].find("worker 1's push was refused (shape_mismatch"), std::string::npos)
      << log.messages[2];
  EXPECT_NE(log.messages[2].find("the stored value is unchanged"), std::string::npos);
  EXPECT_EQ(log.events[4], "w1:pull:ok=7");  // nothing of the round was applied
  // The next round is an ordinary one.
  for (int w = 0; w < 3; ++w)
    core.handle(request(log, wire::msg::push, w, fill(w + 1)));
  core.handle(request(log, wire::msg::pull, 0, {}));
  EXPECT_EQ(log.events.back(), "w0:pull:ok=6");
}

TEST(RoundFailure, PushTheDispatcherRefusedCountsInItsRound) {
  reply_log log;
  server_core core(2);
  core.handle(request(log, wire::msg::init, 0, fill(7)));
  auto bad = request(log, wire::msg::push, 1, {});
  bad->rejected = status{errc::protocol_error, "payload does not match its metadata"};
  core.handle(bad);
  core.handle(request(log, wire::msg::push, 0, fill(1)));
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[1], "w1:push:protocol_error");
  EXPECT_EQ(log.events[2], "w0:push:aborted");
  EXPECT_NE(log.messages[2].find("worker 1's push was refused (protocol_error"), std::string::npos);
}

TEST(RoundFailure, DepartedWorkerFailsOpenAndLaterRoundsWithoutIt) {
  reply_log log;
  server_core core(3);
  core.handle(request(log, wire::msg::init, 0, fill(7)));
  core.handle(request(log, wire::msg::push, 0, fill(1)));
  core.handle(request(log, wire::msg::push, 2, fill(1)));
  core.worker_left(1);
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[1], "w0:push:aborted");
  EXPECT_EQ(log.events[2], "w2:push:aborted");
  EXPECT_NE(log.messages[1].find("worker 1 left (its store shut down) without pushing"),
            std::string::npos)
      << log.messages[1];
  core.handle(request(log, wire::msg::push, 2, fill(1)));  // a later round fails at once
  EXPECT_EQ(log.events.back(), "w2:push:aborted");
  core.handle(request(log, wire::msg::pull, 0, {}));
  EXPECT_EQ(log.events.back(), "w0:pull:ok=7");
}

TEST(RoundFailure, DepartedWorkersQueuedPushStillCompletesItsRound) {
  reply_log log;
  server_core core(2);
  core.handle(request(log, wire::msg::init, 0, fill(0)));
  core.handle(request(log, wire::msg::push, 1, fill(1)));  // round 1
  core.handle(request(log, wire::msg::push, 1, fill(2)));  // queued for round 2
  core.worker_left(1);                                     // nothing is missing yet
  EXPECT_EQ(log.events.size(), 1u);
  core.handle(request(log, wire::msg::push, 0, fill(10)));  // round 1: 11
  core.handle(request(log, wire::msg::push, 0, fill(20)));  // round 2: 22
  core.handle(request(log, wire::msg::pull, 0, {}));
  EXPECT_EQ(log.events.back(), "w0:pull:ok=22");
  core.handle(request(log, wire::msg::push, 0, fill(1)));  // round 3 lacks worker 1
  EXPECT_EQ(log.events.back(), "w0:push:aborted");
}

TEST(RoundFailure, AsyncRefusalConcernsItsSenderOnly) {
  reply_log log;
  server_core core(2);
  core.set_sync(false);
  core.set_updater(make_updater([](const key&, const tensor& merged, tensor& stored) {
    auto* s = stored.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] += merged.cdata<float>()[i];
  }));
  core.handle(request(log, wire::msg::init, 0, fill(0)));
  core.handle(request(log, wire::msg::push, 1, fill(1, 5), 5));
  core.handle(request(log, wire::msg::push, 0, fill(1)));
  core.handle(request(log, wire::msg::pull, 0, {}));
  EXPECT_EQ(log.events, (std::vector<std::string>{"w0:init:ok", "w1:push:shape_mismatch",
                                                  "w0:push:ok", "w0:pull:ok=1"}));
}

}  // namespace
}  // namespace kvactor::detail
