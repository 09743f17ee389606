// The device callback thread (device/src/callback_thread.hpp): awaited completions run once
// their poll says done or once they are signalled, with the signalled error, each after the
// earlier ones of its order key and independently of other keys; plain callbacks run in post
// order. The polls here are flags the test sets, standing in for CUDA events.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "callback_thread.hpp"

namespace kvactor::detail {
namespace {

using namespace std::chrono_literals;

// One completion: its poll reads `done`; running it records its name and fulfils `ran`.
struct probe {
  std::atomic<bool> done{false};
  std::promise<int> ran;  // the error it ran with
  awaited_ptr c = std::make_shared<awaited_completion>();

  probe(std::uintptr_t order, int name, std::vector<int>* log, std::mutex* mu) {
    c->order = order;
    c->poll = [this] { return done.load(); };
    c->fn = [this, name, log, mu](int error) {
      {
        std::lock_guard<std::mutex> g(*mu);
        log->push_back(name);
      }
      ran.set_value(error);
    };
  }
};

class CallbackThread : public ::testing::Test {
 protected:
  std::vector<int> log;
  std::mutex mu;
  std::vector<int> ran_so_far() {
    std::lock_guard<std::mutex> g(mu);
    return log;
  }
};

TEST_F(CallbackThread, ACompletionRunsOnceItsPollSaysDone) {
  probe a(1, 1, &log, &mu);
  auto ran = a.ran.get_future();
  a.done = true;  // polled once at least, however late the thread gets to it
  post_awaited(a.c);
  ASSERT_EQ(ran.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ran.get(), 0);
  signal_awaited(*a.c, 0);   // the driver's callback still comes; nothing runs twice
  probe b(1, 2, &log, &mu);  // a later completion of the key still runs
  auto ran_b = b.ran.get_future();
  b.done = true;
  post_awaited(b.c);
  ASSERT_EQ(ran_b.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ran_so_far(), (std::vector<int>{1, 2}));
}

TEST_F(CallbackThread, ASignalledCompletionRunsWithItsErrorEvenAfterItsSpinWindow) {
  probe a(7, 1, &log, &mu);  // its poll never says done
  auto ran = a.ran.get_future();
  post_awaited(a.c);
  // Past the spin window the thread stops polling and waits for the signal.
  EXPECT_EQ(ran.wait_for(spin_window * 5), std::future_status::timeout);
  signal_awaited(*a.c, 42);
  ASSERT_EQ(ran.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ran.get(), 42);
}

TEST_F(CallbackThread, ACompletionSignalledBeforeItIsPostedRuns) {
  probe a(3, 1, &log, &mu);
  auto ran = a.ran.get_future();
  signal_awaited(*a.c, 5);  // the driver can be faster than the poster
  post_awaited(a.c);
  ASSERT_EQ(ran.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ran.get(), 5);
}

TEST_F(CallbackThread, OneKeysCompletionsRunInPostOrderOtherKeysDoNotWait) {
  probe first(11, 1, &log, &mu), second(11, 2, &log, &mu), other(12, 3, &log, &mu);
  auto ran_first = first.ran.get_future(), ran_second = second.ran.get_future(),
       ran_other = other.ran.get_future();
  second.done = true;  // done before the earlier completion of its key
  other.done = true;
  post_awaited(first.c);
  post_awaited(second.c);
  post_awaited(other.c);
  // Another key's completion is not held up by key 11's first one.
  ASSERT_EQ(ran_other.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ran_so_far(), (std::vector<int>{3}));
  signal_awaited(*first.c, 0);
  ASSERT_EQ(ran_second.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ran_first.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(ran_so_far(), (std::vector<int>{3, 1, 2}));
}

TEST_F(CallbackThread, PlainCallbacksRunInPostOrder) {
  std::promise<void> last;
  auto done = last.get_future();
  for (int i = 0; i < 100; ++i)
    post_callback([this, i, &last] {
      {
        std::lock_guard<std::mutex> g(mu);
        log.push_back(i);
      }
      if (i == 99) last.set_value();
    });
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  const auto got = ran_so_far();
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
}

}  // namespace
}  // namespace kvactor::detail
