// thread_pool: every chunk once, one completion after the last chunk, priority order,
// parallel_for from outside and inside the pool, split_range, and shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kvactor/detail/thread_pool.hpp"

namespace kvactor {
namespace {

using namespace std::chrono_literals;

// A one-shot gate that a pool thread can wait on.
class gate {
 public:
  gate() : f_(p_.get_future().share()) {}
  void open() { p_.set_value(); }
  void wait() const { f_.wait(); }

 private:
  std::promise<void> p_;
  std::shared_future<void> f_;
};

// Waits, bounded so a broken pool fails the test instead of hanging it.
template <class T>
void expect_ready(std::future<T>& f) {
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
}

TEST(ThreadPool, SizeDefaultsToTheHardware) {
  thread_pool three(3);
  EXPECT_EQ(three.size(), 3u);
  thread_pool def;
  EXPECT_EQ(def.size(), std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_FALSE(def.on_pool_thread());
}

TEST(ThreadPool, SubmitRunsEveryChunkOnceThenDoneOnce) {
  thread_pool pool(4);
  for (std::size_t n : {1, 2, 3, 17, 1000}) {
    SCOPED_TRACE(n);
    auto hits = std::make_unique<std::atomic<int>[]>(n);
    for (std::size_t i = 0; i < n; ++i)
      hits[i] = 0;
    std::vector<int> plain(n, 0);  // written by chunks, read in done: needs the handoff
    std::atomic<int> done_calls{0};
    std::promise<bool> finished;
    auto f = finished.get_future();
    pool.submit(
        n,
        [&](std::size_t i) {
          hits[i].fetch_add(1);
          plain[i] = static_cast<int>(i) + 1;
        },
        [&] {
          ++done_calls;
          bool all = true;
          for (std::size_t i = 0; i < n; ++i)
            all = all && hits[i].load() == 1 && plain[i] == int(i) + 1;
          finished.set_value(all && pool.on_pool_thread());
        });
    expect_ready(f);
    EXPECT_TRUE(f.get()) << "done ran before every chunk finished, or off the pool";
    EXPECT_EQ(done_calls.load(), 1);
  }
}

TEST(ThreadPool, ZeroChunksCallsDoneAtOnce) {
  thread_pool pool(2);
  bool done = false;
  pool.submit(
      0, [](std::size_t) { ADD_FAILURE() << "no chunk expected"; }, [&] { done = true; });
  EXPECT_TRUE(done);
  pool.submit(
      0, [](std::size_t) {}, nullptr);  // no completion: nothing to call
}

TEST(ThreadPool, HigherPriorityStartsFirstThenSubmissionOrder) {
  thread_pool pool(1);
  gate release;
  std::promise<void> blocker_running;
  pool.submit(
      1,
      [&](std::size_t) {
        blocker_running.set_value();
        release.wait();
      },
      nullptr);
  blocker_running.get_future().wait();  // the only thread is now busy: everything else queues

  std::mutex mu;
  std::vector<std::string> order;
  std::promise<void> all_done;
  std::atomic<int> left{6};
  auto job = [&](std::string name, std::size_t chunks, int priority) {
    pool.submit(
        chunks,
        [&, name](std::size_t i) {
          std::lock_guard<std::mutex> g(mu);
          order.push_back(name + std::to_string(i));
        },
        [&] {
          if (--left == 0) all_done.set_value();
        },
        priority);
  };
  job("low", 2, -1);
  job("mid_a", 1, 5);
  job("high", 2, 10);
  job("zero", 1, 0);
  job("mid_b", 1, 5);
  job("top", 1, 100);
  release.open();
  auto f = all_done.get_future();
  expect_ready(f);
  EXPECT_EQ(order, (std::vector<std::string>{"top0", "high0", "high1", "mid_a0", "mid_b0", "zero0",
                                             "low0", "low1"}));
}

TEST(ThreadPool, SubmitFromInsideAChunkAndACompletion) {
  thread_pool pool(2);
  std::promise<int> result;
  std::atomic<int> inner_sum{0};
  pool.submit(
      1,
      [&](std::size_t) {
        pool.submit(
            10, [&](std::size_t i) { inner_sum += static_cast<int>(i); },
            [&] {
              // A completion submitting again.
              pool.submit(
                  1, [&](std::size_t) { inner_sum += 1000; },
                  [&] { result.set_value(inner_sum.load()); });
            });
      },
      nullptr);
  auto f = result.get_future();
  expect_ready(f);
  EXPECT_EQ(f.get(), 45 + 1000);
}

TEST(ThreadPool, ParallelForFromOutsideCoversEveryIndexOnce) {
  thread_pool pool(3);
  for (std::size_t n : {0, 1, 2, 5, 64, 5000}) {
    auto hits = std::make_unique<std::atomic<int>[]>(n + 1);
    for (std::size_t i = 0; i <= n; ++i)
      hits[i] = 0;
    std::vector<std::int64_t> out(n, 0);
    pool.parallel_for(n, [&](std::size_t i) {
      hits[i].fetch_add(1);
      out[i] = static_cast<std::int64_t>(i) * 3;  // visible to the caller once parallel_for returns
    });
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      ASSERT_EQ(out[i], static_cast<std::int64_t>(i) * 3);
    }
  }
}

TEST(ThreadPool, ParallelForRunsOnSeveralThreads) {
  thread_pool pool(2);
  // Every chunk waits until chunks have run on two different threads, which needs the pool's
  // threads to take part next to the caller. The bounded wait only guards against hanging.
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::promise<void> two_threads;
  std::shared_future<void> two = two_threads.get_future().share();
  bool fulfilled = false;
  pool.parallel_for(4, [&](std::size_t) {
    {
      std::lock_guard<std::mutex> g(mu);
      ids.insert(std::this_thread::get_id());
      if (ids.size() == 2 && !fulfilled) {
        fulfilled = true;
        two_threads.set_value();
      }
    }
    two.wait_for(10s);
  });
  EXPECT_GE(ids.size(), 2u);
}

TEST(ThreadPool, ParallelForOnAPoolThreadRunsInline) {
  thread_pool pool(1);  // with one thread, anything but inline execution would deadlock
  std::promise<bool> ok;
  pool.submit(
      1,
      [&](std::size_t) {
        const auto me = std::this_thread::get_id();
        bool inline_all = pool.on_pool_thread();
        std::vector<int> seen;
        pool.parallel_for(6, [&](std::size_t i) {
          inline_all = inline_all && std::this_thread::get_id() == me;
          seen.push_back(static_cast<int>(i));
        });
        ok.set_value(inline_all && seen == std::vector<int>{0, 1, 2, 3, 4, 5});
      },
      nullptr);
  auto f = ok.get_future();
  expect_ready(f);
  EXPECT_TRUE(f.get());
}

TEST(ThreadPool, OnPoolThreadIsPerPool) {
  thread_pool a(1), b(1);
  std::promise<std::pair<bool, bool>> seen;
  a.submit(
      1,
      [&](std::size_t) {
        seen.set_value({a.on_pool_thread(), b.on_pool_thread()});
      },
      nullptr);
  auto f = seen.get_future();
  expect_ready(f);
  auto [in_a, in_b] = f.get();
  EXPECT_TRUE(in_a);
  EXPECT_FALSE(in_b);
}

TEST(ThreadPool, ConcurrentSubmitters) {
  thread_pool pool(3);
  constexpr int submitters = 4, jobs = 50, chunks = 7;
  std::atomic<int> chunk_runs{0}, done_runs{0};
  std::promise<void> all;
  std::vector<std::thread> ts;
  for (int s = 0; s < submitters; ++s)
    ts.emplace_back([&, s] {
      for (int j = 0; j < jobs; ++j)
        pool.submit(
            chunks, [&](std::size_t) { ++chunk_runs; },
            [&] {
              if (++done_runs == submitters * jobs) all.set_value();
            },
            (s + j) % 3);
    });
  for (auto& t : ts)
    t.join();
  auto f = all.get_future();
  expect_ready(f);
  EXPECT_EQ(chunk_runs.load(), submitters * jobs * chunks);
  EXPECT_EQ(done_runs.load(), submitters * jobs);
}

TEST(ThreadPool, DestructorFinishesQueuedJobs) {
  std::atomic<int> chunk_runs{0}, done_runs{0};
  gate release;
  std::promise<void> blocker_running;
  {
    thread_pool pool(1);
    pool.submit(
        1,
        [&](std::size_t) {
          blocker_running.set_value();
          release.wait();
        },
        nullptr);
    blocker_running.get_future().wait();
    for (int j = 0; j < 20; ++j)
      pool.submit(
          5, [&](std::size_t) { ++chunk_runs; }, [&] { ++done_runs; }, j % 4);
    // Everything above is still queued behind the blocker.
    EXPECT_EQ(chunk_runs.load(), 0);
    release.open();
  }  // ~thread_pool
  EXPECT_EQ(chunk_runs.load(), 100);
  EXPECT_EQ(done_runs.load(), 20);
}

// ---------------------------------------------------------------- split_range

// help(): the submitter runs the chunks no pool thread has claimed. With the only pool thread
// parked on a gate, every chunk of the second job runs on the helping thread, and done() is
// called there, inside help().
TEST(ThreadPool, HelpRunsUnclaimedChunksOnTheCaller) {
  gate started, release;  // before the pool: its thread may still be in wait() at the end
  thread_pool pool(1);
  auto blocker = pool.submit(
      1,
      [&](std::size_t) {
        started.open();
        release.wait();
      },
      nullptr);
  started.wait();
  std::vector<std::thread::id> ran(16);
  std::thread::id done_on;
  auto job = pool.submit(
      ran.size(), [&](std::size_t i) { ran[i] = std::this_thread::get_id(); },
      [&] { done_on = std::this_thread::get_id(); });
  pool.help(job);
  for (const auto& id : ran)
    EXPECT_EQ(id, std::this_thread::get_id());
  EXPECT_EQ(done_on, std::this_thread::get_id());
  release.open();
  pool.help(blocker);  // nothing left unclaimed: returns at once
  pool.help({});       // an empty handle is ignored
}

TEST(SplitRange, CoversWithoutOverlapAndBalances) {
  for (std::size_t n = 0; n <= 300; ++n) {
    for (std::size_t parts = 1; parts <= 24; ++parts) {
      std::size_t expect_begin = 0, smallest = SIZE_MAX, largest = 0;
      for (std::size_t i = 0; i < parts; ++i) {
        std::size_t b = 0, e = 0;
        split_range(n, parts, i, b, e);
        ASSERT_EQ(b, expect_begin) << "n=" << n << " parts=" << parts << " i=" << i;
        ASSERT_LE(b, e);
        smallest = std::min(smallest, e - b);
        largest = std::max(largest, e - b);
        expect_begin = e;
      }
      ASSERT_EQ(expect_begin, n) << "n=" << n << " parts=" << parts;
      ASSERT_LE(largest - smallest, 1u) << "n=" << n << " parts=" << parts;
    }
  }
}

TEST(SplitRange, LargeRanges) {
  const std::size_t n = (std::size_t{1} << 40) + 12345;
  const std::size_t parts = 7;
  std::size_t next = 0;
  for (std::size_t i = 0; i < parts; ++i) {
    std::size_t b, e;
    split_range(n, parts, i, b, e);
    EXPECT_EQ(b, next);
    EXPECT_GE(e - b, n / parts);
    EXPECT_LE(e - b, n / parts + 1);
    next = e;
  }
  EXPECT_EQ(next, n);
}

}  // namespace
}  // namespace kvactor
