// The server's round logic without sockets: dist_sync rounds, deferred requests, dist_async,
// copy-on-write of values a reply still holds, failures.
#include <gtest/gtest.h>

#include "../support/server_requests.hpp"

namespace kvactor::detail {
namespace {

using testing::fill4;
using testing::reply_log;
using testing::request;

TEST(ServerCore, SyncRoundMergesOnePushPerWorkerThenAnswersAll) {
  reply_log log;
  server_core core(2);
  core.handle(request(log, wire::msg::init, 0, 1, fill4(0)));
  core.handle(request(log, wire::msg::push, 0, 1, fill4(1)));
  core.handle(request(log, wire::msg::push, 0, 1, fill4(10)));  // next round
  core.handle(request(log, wire::msg::pull, 0, 1, {}));         // waits for worker 0's round
  core.handle(request(log, wire::msg::pull, 1, 1, {}));         // answered now: 0
  EXPECT_EQ(log.events, (std::vector<std::string>{"w0:init:ok", "w1:pull:ok=0"}));
  core.handle(request(log, wire::msg::push, 1, 1, fill4(2)));  // closes round 1: 3
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"w0:init:ok", "w1:pull:ok=0", "w0:push:ok", "w1:push:ok"}));
  // Round 2 has worker 0's deferred push (10); its pull still waits.
  core.handle(request(log, wire::msg::pushpull, 1, 1, fill4(5)));
  EXPECT_EQ(log.events.back(), "w0:pull:ok=15");
  EXPECT_EQ(log.events[log.events.size() - 2], "w1:pushpull:ok=15");
  EXPECT_EQ(log.events[log.events.size() - 3], "w0:push:ok");
}

TEST(ServerCore, SyncWithUpdaterAppliesOncePerRound) {
  reply_log log;
  server_core core(3);
  int calls = 0;
  core.set_updater(make_updater([&](const key&, const tensor& merged, tensor& stored) {
    ++calls;
    auto* s = stored.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] -= 0.5f * merged.cdata<float>()[i];
  }));
  core.handle(request(log, wire::msg::init, 0, "w", fill4(10)));
  for (int w = 0; w < 3; ++w)
    core.handle(request(log, wire::msg::push, w, "w", fill4(w + 1)));
  core.handle(request(log, wire::msg::pull, 2, "w", {}));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(log.events.back(), "w2:pull:ok=7");  // 10 - 0.5 * (1 + 2 + 3)
}

TEST(ServerCore, AsyncAppliesEveryPushAndNeedsAnUpdater) {
  reply_log log;
  server_core core(2);
  core.set_sync(false);
  core.handle(request(log, wire::msg::init, 0, 1, fill4(0)));
  core.handle(request(log, wire::msg::push, 1, 1, fill4(3)));
  EXPECT_EQ(log.events.back(), "w1:push:invalid_argument");
  core.set_updater(make_updater([](const key&, const tensor& merged, tensor& stored) {
    auto* s = stored.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] += merged.cdata<float>()[i];
  }));
  core.handle(request(log, wire::msg::push, 1, 1, fill4(3)));
  core.handle(request(log, wire::msg::pushpull, 0, 1, fill4(4)));
  EXPECT_EQ(log.events.back(), "w0:pushpull:ok=7");
}

TEST(ServerCore, RepliesKeepTheValueTheySend) {
  server_core core(1);
  tensor held;
  auto r = std::make_shared<server_request>();
  reply_log log;
  core.set_updater(make_updater([](const key&, const tensor& merged, tensor& stored) {
    auto* s = stored.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] += merged.cdata<float>()[i];
  }));
  core.handle(request(log, wire::msg::init, 0, 1, fill4(1)));
  auto pull = request(log, wire::msg::pull, 0, 1, {});
  pull->reply = [&held](const status&, const tensor* v) { held = *v; };  // "still sending"
  core.handle(pull);
  core.handle(request(log, wire::msg::push, 0, 1, fill4(5)));
  EXPECT_EQ(held.at(0), 1.0);  // the in-flight reply's bytes did not change
  core.handle(request(log, wire::msg::pull, 0, 1, {}));
  EXPECT_EQ(log.events.back(), "w0:pull:ok=6");
}

TEST(ServerCore, ErrorsAndFailures) {
  reply_log log;
  server_core core(2);
  core.handle(request(log, wire::msg::push, 0, 9, fill4(1)));
  EXPECT_EQ(log.events.back(), "w0:push:not_initialized");
  core.handle(request(log, wire::msg::init, 0, 1, fill4(0)));
  core.handle(request(log, wire::msg::init, 1, 1, fill4(0)));
  EXPECT_EQ(log.events.back(), "w1:init:already_initialized");
  core.handle(request(log, wire::msg::push, 0, 1, fill4(1), 8));
  EXPECT_EQ(log.events.back(), "w0:push:shape_mismatch");
  core.handle(request(log, wire::msg::push, 7, 1, fill4(1)));
  EXPECT_EQ(log.events.back(), "w7:push:protocol_error");
  core.handle(request(log, wire::msg::push, 0, 1, fill4(1)));  // open round, waits for w1
  core.handle(request(log, wire::msg::pull, 0, 1, {}));        // deferred
  const auto before = log.events.size();
  core.fail_all(status{errc::peer_lost, "worker 1 lost"});
  ASSERT_EQ(log.events.size(), before + 2);
  EXPECT_EQ(log.events[before], "w0:push:peer_lost");
  EXPECT_EQ(log.events[before + 1], "w0:pull:peer_lost");
}

}  // namespace
}  // namespace kvactor::detail
