// The count of a store's calls in flight (actors/src/op.hpp): a call no longer counts in
// outstanding() once its future is ready, and wait_zero() returns only after every future is.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "op.hpp"

namespace kvactor::detail {
namespace {

TEST(OpCounter, ACallHasLeftTheCountWhenItsFutureIsReady) {
  auto counter = std::make_shared<op_counter>();
  auto call = std::make_shared<call_state>(2, counter);
  EXPECT_EQ(counter->value(), 1u);
  std::size_t seen_when_ready = 99;
  call->on_ready([&] { seen_when_ready = counter->value(); });
  call->part_done(status{});
  EXPECT_EQ(counter->value(), 1u) << "one part of two";
  call->part_done(status{});
  EXPECT_EQ(seen_when_ready, 0u);
  EXPECT_TRUE(call->ready());
  EXPECT_EQ(counter->value(), 0u);
  counter->wait_zero();  // returns at once
}

TEST(OpCounter, WaitZeroReturnsOnlyOnceTheFutureIsReady) {
  auto counter = std::make_shared<op_counter>();
  auto call = std::make_shared<call_state>(1, counter);
  std::atomic<bool> in_callback{false}, release{false}, waited{false};
  // The completion stops inside the future's callbacks, after the call left value().
  call->on_ready([&] {
    in_callback = true;
    while (!release.load())
      std::this_thread::yield();
  });
  std::thread completer([&] { call->part_done(status{}); });
  while (!in_callback.load())
    std::this_thread::yield();
  EXPECT_EQ(counter->value(), 0u);
  std::thread waiter([&] {
    counter->wait_zero();
    waited = true;
  });
  // The waiter cannot finish while the completion is still running its callbacks.
  for (int i = 0; i < 1000; ++i)
    std::this_thread::yield();
  EXPECT_FALSE(waited.load());
  release = true;
  completer.join();
  waiter.join();
  EXPECT_TRUE(waited.load());
}

}  // namespace
}  // namespace kvactor::detail
