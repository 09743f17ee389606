// future / promise / when_all: completion, waiting, errors, continuations, abandonment.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "errc_assert.hpp"
#include "kvactor/future.hpp"

namespace kvactor {
namespace {

using namespace std::chrono_literals;

TEST(Future, DefaultIsInvalid) {
  future<int> f;
  EXPECT_FALSE(f.valid());
  promise<int> p;
  f = p.get_future();
  EXPECT_TRUE(f.valid());
  EXPECT_FALSE(f.ready());
}

TEST(Future, SetValueMakesItReady) {
  promise<std::string> p;
  auto f = p.get_future();
  auto g = f;  // handles share one result
  EXPECT_FALSE(f.ready());
  EXPECT_TRUE(p.set_value(std::string("abc")));
  EXPECT_TRUE(f.ready());
  EXPECT_TRUE(g.ready());
  EXPECT_EQ(f.get(), "abc");
  EXPECT_EQ(&f.get(), &g.get()) << "get returns a reference to the one shared value";
  EXPECT_TRUE(f.get_status().is_ok());
  f.wait();
  EXPECT_TRUE(f.wait_for(0s));
}

TEST(Future, ConvertibleValues) {
  promise<double> p;
  p.set_value(3);  // int converts to double
  EXPECT_EQ(p.get_future().get(), 3.0);
  promise<void> v;
  auto fv = v.get_future();
  EXPECT_TRUE(v.set_value());
  EXPECT_NO_THROW(fv.get());
}

TEST(Future, OnlyTheFirstCompletionCounts) {
  promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.set_value(1));
  EXPECT_FALSE(p.set_value(2));
  EXPECT_FALSE(p.set_status(status(errc::timeout, "late")));
  EXPECT_EQ(f.get(), 1);
  promise<void> q;
  EXPECT_TRUE(q.set_status(status(errc::peer_lost, "first")));
  EXPECT_FALSE(q.set_value());
  EXPECT_EQ(q.get_future().get_status().code(), errc::peer_lost);
}

TEST(Future, WaitForTimesOutThenSucceedsAfterFulfilment) {
  promise<int> p;
  auto f = p.get_future();
  EXPECT_FALSE(f.wait_for(0s));
  EXPECT_FALSE(f.wait_for(2ms));
  EXPECT_FALSE(f.wait_for(-5ms)) << "a deadline in the past";
  p.set_value(4);
  EXPECT_TRUE(f.wait_for(0s));
  EXPECT_TRUE(f.wait_for(1h));
  EXPECT_EQ(f.get(), 4);
}

TEST(Future, WaitForWithAnEndlessDurationMeansNoDeadline) {
  promise<int> p;
  auto f = p.get_future();
  std::thread t([&] { p.set_value(8); });
  EXPECT_TRUE(f.wait_for(std::chrono::hours::max()));
  EXPECT_TRUE(f.wait_for(std::chrono::nanoseconds::max()));
  EXPECT_TRUE(f.wait_for(std::chrono::duration<double>(1e300)));
  t.join();
  EXPECT_EQ(f.get(), 8);
}

TEST(Future, GetThrowsTheError) {
  promise<int> p;
  auto f = p.get_future();
  p.set_status(status(errc::shape_mismatch, "key 3: (2,) vs (3,)"));
  EXPECT_TRUE(f.ready());
  const status& s = f.get_status();
  EXPECT_EQ(s.code(), errc::shape_mismatch);
  EXPECT_EQ(s.message(), "key 3: (2,) vs (3,)");
  try {
    f.get();
    FAIL() << "no exception";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), errc::shape_mismatch);
    EXPECT_EQ(e.message(), "key 3: (2,) vs (3,)");
  }
  promise<void> v;
  v.set_status(status(errc::timeout, "t"));
  EXPECT_ERRC(v.get_future().get(), errc::timeout);
}

TEST(Future, OkStatusCompletesAVoidFuture) {
  promise<void> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.set_status(status::ok()));
  EXPECT_TRUE(f.ready());
  EXPECT_NO_THROW(f.get());
}

TEST(Future, OkStatusWithoutAValueIsAnError) {
  // A future<T> that completes "successfully" but has no value cannot give one to get().
  promise<int> p;
  auto f = p.get_future();
  p.set_status(status::ok());
  ASSERT_TRUE(f.ready());
  EXPECT_FALSE(f.get_status().is_ok());
  EXPECT_ERRC(f.get(), errc::internal);
  auto r = future<std::string>::ready_with(status::ok());
  EXPECT_ERRC(r.get(), errc::internal);
}

TEST(Future, AbandonedPromiseCompletesWithInternal) {
  future<int> f;
  {
    promise<int> p;
    f = p.get_future();
  }
  ASSERT_TRUE(f.ready());
  EXPECT_EQ(f.get_status().code(), errc::internal);
  EXPECT_ERRC(f.get(), errc::internal);

  future<void> fv;
  { fv = promise<void>().get_future(); }
  EXPECT_EQ(fv.get_status().code(), errc::internal);
}

TEST(Future, MovedPromisesKeepOrAbandonCorrectly) {
  promise<int> a;
  auto fa = a.get_future();
  promise<int> b(std::move(a));  // a is empty now; its destruction must not complete fa
  {
    promise<int> gone = std::move(b);
    b = promise<int>();  // assigning into a moved-from promise
    gone.set_value(11);
  }
  EXPECT_EQ(fa.get(), 11);

  promise<int> c;
  auto fc = c.get_future();
  c = promise<int>();  // the old, pending state is abandoned
  EXPECT_EQ(fc.get_status().code(), errc::internal);
  auto fresh = c.get_future();
  c.set_value(2);
  EXPECT_EQ(fresh.get(), 2);
}

TEST(Future, ReadyWith) {
  auto ok = future<void>::ready_with(status::ok());
  EXPECT_TRUE(ok.ready());
  EXPECT_NO_THROW(ok.get());
  auto bad = future<int>::ready_with(status(errc::unsupported, "nope"));
  EXPECT_TRUE(bad.ready());
  EXPECT_ERRC(bad.get(), errc::unsupported);
}

TEST(Future, GetFromAnotherThread) {
  promise<std::vector<int>> p;
  auto f = p.get_future();
  std::thread t([&] { p.set_value(std::vector<int>{1, 2, 3}); });
  EXPECT_EQ(f.get(), (std::vector<int>{1, 2, 3}));
  t.join();
}

TEST(Future, ManyWaitersAllWake) {
  promise<int> p;
  auto f = p.get_future();
  constexpr int n = 12;
  std::atomic<int> waiting{0}, woke_with_value{0};
  std::promise<void> all_waiting;
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&, i, f] {  // each thread has its own handle
      if (++waiting == n) all_waiting.set_value();
      bool ok = false;
      switch (i % 3) {
        case 0:
          ok = f.get() == 99;
          break;
        case 1:
          ok = f.wait_for(30s) && f.get() == 99;
          break;
        default:
          f.wait();
          ok = f.get_status().is_ok() && f.get() == 99;
          break;
      }
      if (ok) ++woke_with_value;
    });
  all_waiting.get_future().wait();
  p.set_value(99);
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(woke_with_value.load(), n);
}

// ---------------------------------------------------------------- then

TEST(FutureThen, ChainsValues) {
  promise<int> p;
  auto f = p.get_future();
  auto g = f.then([](const future<int>& x) {
              return std::to_string(x.get() * 2);
            }).then([](const future<std::string>& s) { return s.get() + "!"; });
  EXPECT_FALSE(g.ready());
  p.set_value(21);
  ASSERT_TRUE(g.ready()) << "continuations run on the completing thread, before set_value returns";
  EXPECT_EQ(g.get(), "42!");
}

TEST(FutureThen, VoidToValueAndValueToVoid) {
  promise<void> p;
  int side = 0;
  auto g = p.get_future().then([](const future<void>& x) {
    x.get();
    return 5;
  });
  auto h = g.then([&](const future<int>& x) { side = x.get(); });
  static_assert(std::is_same_v<decltype(h), future<void>>);
  p.set_value();
  EXPECT_EQ(g.get(), 5);
  EXPECT_NO_THROW(h.get());
  EXPECT_EQ(side, 5);
}

TEST(FutureThen, ErrorsPropagateThroughGet) {
  promise<int> p;
  bool saw_error = false;
  auto g = p.get_future().then([&](const future<int>& x) {
    saw_error = !x.get_status().is_ok();
    return x.get() + 1;  // throws kvactor::error: the next future carries it
  });
  auto h = g.then([](const future<int>& x) { return x.get() * 10; });
  p.set_status(status(errc::not_initialized, "key 7"));
  EXPECT_TRUE(saw_error);
  EXPECT_EQ(g.get_status().code(), errc::not_initialized);
  EXPECT_EQ(g.get_status().message(), "key 7");
  EXPECT_EQ(h.get_status().code(), errc::not_initialized);
}

TEST(FutureThen, ContinuationMayRecover) {
  promise<int> p;
  auto g = p.get_future().then(
      [](const future<int>& x) { return x.get_status().is_ok() ? x.get() : -1; });
  p.set_status(status(errc::timeout, ""));
  EXPECT_EQ(g.get(), -1);
}

TEST(FutureThen, ThrownErrorsBecomeTheNextFuturesStatus) {
  auto ready = future<void>::ready_with(status::ok());
  auto a = ready.then(
      [](const future<void>&) -> int { throw error(errc::updater_failed, "updater raised"); });
  EXPECT_EQ(a.get_status().code(), errc::updater_failed);
  EXPECT_EQ(a.get_status().message(), "updater raised");

  auto b = ready.then([](const future<void>&) { throw std::runtime_error("boom"); });
  EXPECT_EQ(b.get_status().code(), errc::internal);
  EXPECT_NE(b.get_status().message().find("boom"), std::string::npos) << b.get_status().message();

  auto c = ready.then([](const future<void>&) -> int { throw 42; });
  EXPECT_EQ(c.get_status().code(), errc::internal);
}

TEST(FutureThen, OnAReadyFutureRunsInline) {
  promise<int> p;
  auto f = p.get_future();
  p.set_value(3);
  bool ran = false;
  std::thread::id where;
  auto g = f.then([&](const future<int>& x) {
    ran = true;
    where = std::this_thread::get_id();
    return x.get() * 2;
  });
  EXPECT_TRUE(ran) << "ran before then() returned";
  EXPECT_EQ(where, std::this_thread::get_id());
  EXPECT_TRUE(g.ready());
  EXPECT_EQ(g.get(), 6);
}

TEST(FutureThen, OtherwiseRunsOnTheCompletingThread) {
  promise<int> p;
  auto f = p.get_future();
  std::thread::id where;
  auto g = f.then([&](const future<int>& x) {
    where = std::this_thread::get_id();
    return x.get();
  });
  std::thread::id completer;
  std::thread t([&] {
    completer = std::this_thread::get_id();
    p.set_value(1);
  });
  t.join();
  EXPECT_EQ(where, completer);
  EXPECT_EQ(g.get(), 1);
}

TEST(FutureThen, SeveralContinuationsOnOneFutureAllRun) {
  promise<int> p;
  auto f = p.get_future();
  std::vector<future<int>> outs;
  for (int i = 0; i < 5; ++i)
    outs.push_back(f.then([i](const future<int>& x) { return x.get() + i; }));
  p.set_value(10);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(outs[static_cast<std::size_t>(i)].get(), 10 + i);
}

TEST(FutureThen, AbandonedSourceReachesTheContinuation) {
  future<int> g;
  {
    promise<int> p;
    g = p.get_future().then([](const future<int>& x) { return x.get(); });
  }
  EXPECT_EQ(g.get_status().code(), errc::internal);
}

TEST(FutureThen, RacingCompletionAndRegistrationRunsEachContinuationOnce) {
  for (int round = 0; round < 50; ++round) {
    promise<int> p;
    auto f = p.get_future();
    std::atomic<int> runs{0};
    std::promise<void> go;
    auto go_f = go.get_future().share();
    std::thread t([&] {
      go_f.wait();
      p.set_value(round);
    });
    go.set_value();
    auto g = f.then([&](const future<int>& x) {
      ++runs;
      return x.get();
    });
    t.join();
    ASSERT_EQ(g.get(), round);
    ASSERT_EQ(runs.load(), 1);
  }
}

// ---------------------------------------------------------------- when_all

TEST(WhenAll, EmptyIsReadyAndOk) {
  auto f = when_all({});
  EXPECT_TRUE(f.ready());
  EXPECT_NO_THROW(f.get());
}

TEST(WhenAll, CompletesAfterTheLastPart) {
  std::vector<promise<void>> ps(3);
  std::vector<future<void>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  auto all = when_all(fs);
  ps[2].set_value();
  ps[0].set_value();
  EXPECT_FALSE(all.ready());
  ps[1].set_value();
  EXPECT_TRUE(all.ready());
  EXPECT_NO_THROW(all.get());
}

TEST(WhenAll, CarriesTheFirstErrorInTheGivenOrder) {
  std::vector<promise<void>> ps(4);
  std::vector<future<void>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  auto all = when_all(fs);
  // Errors complete in the reverse of the given order; the earliest part's error wins.
  ps[3].set_status(status(errc::timeout, "part 3"));
  ps[2].set_value();
  ps[1].set_status(status(errc::peer_lost, "part 1"));
  EXPECT_FALSE(all.ready());
  ps[0].set_value();
  ASSERT_TRUE(all.ready());
  EXPECT_EQ(all.get_status().code(), errc::peer_lost);
  EXPECT_EQ(all.get_status().message(), "part 1");
}

TEST(WhenAll, AlreadyReadyParts) {
  auto all = when_all({future<void>::ready_with(status::ok()),
                       future<void>::ready_with(status(errc::shut_down, "s")),
                       future<void>::ready_with(status::ok())});
  ASSERT_TRUE(all.ready());
  EXPECT_EQ(all.get_status().code(), errc::shut_down);
  auto ok = when_all({future<void>::ready_with(status::ok())});
  EXPECT_TRUE(ok.ready());
  EXPECT_TRUE(ok.get_status().is_ok());
}

TEST(WhenAll, PartsCompletedFromManyThreads) {
  constexpr int n = 16;
  std::vector<promise<void>> ps(n);
  std::vector<future<void>> fs;
  for (auto& p : ps)
    fs.push_back(p.get_future());
  auto all = when_all(fs);
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&, i] { ps[static_cast<std::size_t>(i)].set_value(); });
  EXPECT_TRUE(all.wait_for(30s));
  for (auto& t : ts)
    t.join();
  EXPECT_TRUE(all.get_status().is_ok());
}

TEST(WhenAll, AbandonedPartIsAnError) {
  std::vector<future<void>> fs;
  promise<void> kept;
  fs.push_back(kept.get_future());
  { fs.push_back(promise<void>().get_future()); }
  auto all = when_all(fs);
  kept.set_value();
  EXPECT_EQ(all.get_status().code(), errc::internal);
}

}  // namespace
}  // namespace kvactor
