// The call-completion rule (actors/src/completion.hpp): N parts answer, exactly one answer
// (the last) is told it was the last, and the first error among the answers is the outcome.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "completion.hpp"

namespace kvactor::detail {
namespace {

TEST(Completion, LastOfThreeIsTheOnlyOneToldSo) {
  completion c(3);
  EXPECT_EQ(c.left(), 3u);
  EXPECT_FALSE(c.done_one(status{}));
  EXPECT_FALSE(c.done_one(status{}));
  EXPECT_EQ(c.left(), 1u);
  EXPECT_TRUE(c.done_one(status{}));
  EXPECT_EQ(c.left(), 0u);
  EXPECT_TRUE(c.first_error().is_ok());
}

TEST(Completion, FirstErrorWinsOverLaterOnesAndSuccesses) {
  completion c(4);
  EXPECT_FALSE(c.done_one(status{}));
  EXPECT_FALSE(c.done_one(status{errc::timeout, "first"}));
  EXPECT_FALSE(c.done_one(status{errc::peer_lost, "second"}));
  EXPECT_TRUE(c.done_one(status{}));
  EXPECT_EQ(c.first_error().code(), errc::timeout);
  EXPECT_EQ(c.first_error().message(), "first");
}

TEST(Completion, ResetSetsThePartsLearnedLater) {
  completion c;
  c.reset(2);
  EXPECT_FALSE(c.done_one(status{}));
  EXPECT_TRUE(c.done_one(status{errc::internal, "last"}));
  EXPECT_EQ(c.first_error().code(), errc::internal);
}

TEST(Completion, OnePartIsLastAtOnce) {
  completion c(1);
  EXPECT_TRUE(c.done_one(status{}));
}

// Parts answered from many threads at once: exactly one answer is the last, and the error
// recorded first (thread 0's, before the others start failing) is the outcome, though the
// other threads race to report theirs.
TEST(Completion, ManyThreadsExactlyOneLastAndFirstErrorKept) {
  constexpr int threads = 8, per_thread = 2000;
  for (int round = 0; round < 20; ++round) {
    completion c(threads * per_thread);
    std::atomic<int> lasts{0};
    std::atomic<bool> first_in{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        int i = 0;
        if (t == 0) {
          if (c.done_one(status{errc::timeout, "first"})) lasts.fetch_add(1);
          first_in.store(true, std::memory_order_release);
          ++i;
        } else {
          while (!first_in.load(std::memory_order_acquire))
            std::this_thread::yield();
        }
        for (; i < per_thread; ++i) {
          status s;
          if (t % 2 == 1 && i % 100 == 0) s = status{errc::peer_lost, std::to_string(t)};
          if (c.done_one(s)) lasts.fetch_add(1);
        }
      });
    for (auto& t : ts)
      t.join();
    EXPECT_EQ(lasts.load(), 1);
    EXPECT_EQ(c.left(), 0u);
    EXPECT_EQ(c.first_error().code(), errc::timeout);
    EXPECT_EQ(c.first_error().message(), "first");
  }
}

TEST(Completion, AnErrorIsNeverOverwritten) {
  completion c(3);
  EXPECT_FALSE(c.done_one(status{errc::timeout, "a"}));
  EXPECT_FALSE(c.done_one(status{errc::timeout, "b"}));
  EXPECT_TRUE(c.done_one(status{errc::timeout, "c"}));
  EXPECT_EQ(c.first_error().message(), "a");
}

}  // namespace
}  // namespace kvactor::detail
