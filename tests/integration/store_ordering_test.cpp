// Ordering and priority, made deterministic: an updater that parks the shard on a gate lets
// the test queue work behind it, then release it and read the order the updater saw.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::tensor;
using kvactor::testing::all_equal;
using kvactor::testing::filled;
using kvactor::testing::gate;

namespace {

const kvactor::shape s4{4};

// Records (key, first element of the merged push) for every update; on key `blocker` it
// announces itself and waits for `release` first.
struct recorder {
  std::mutex mu;
  std::vector<std::pair<std::int64_t, float>> log;
  gate entered, release;
  std::int64_t blocker = 0;

  kvactor::updater_fn fn() {
    return [this](const kvactor::key& k, const tensor& merged, tensor& stored) {
      if (k.as_int() == blocker) {
        entered.open();
        release.wait();
      }
      {
        std::lock_guard<std::mutex> g(mu);
        log.emplace_back(k.as_int(), merged.data<float>()[0]);
      }
      merged.copy_to(stored);  // the updater replaces, like the default
    };
  }
  std::vector<std::int64_t> keys() {
    std::lock_guard<std::mutex> g(mu);
    std::vector<std::int64_t> ks;
    for (auto& [k, v] : log)
      ks.push_back(k);
    return ks;
  }
};

kvactor::kvstore one_shard_store(std::size_t threshold = std::size_t{1} << 20) {
  kvactor::options o;
  o.num_shards = 1;  // every key on one shard, so they compete for it
  o.parallel_threshold_bytes = threshold;
  return kvactor::create("local", o);
}

}  // namespace

class Ordering : public ::testing::TestWithParam<std::size_t> {};

// Across keys: queued work runs highest priority first; equal priorities in arrival order.
TEST_P(Ordering, HigherPriorityServedFirstAcrossKeys) {
  auto kv = one_shard_store(GetParam());
  recorder rec;
  rec.blocker = 100;
  kv.init({100, 1, 2, 3, 4, 5}, {filled(s4, 0), filled(s4, 0), filled(s4, 0), filled(s4, 0),
                                 filled(s4, 0), filled(s4, 0)})
      .get();
  kv.set_updater(rec.fn());
  auto blocked = kv.push(100, filled(s4, 1));
  rec.entered.wait();  // the shard is now busy inside the updater
  std::vector<kvactor::future<void>> fs;
  fs.push_back(kv.push(1, filled(s4, 1), 0));
  fs.push_back(kv.push(2, filled(s4, 1), 0));
  fs.push_back(kv.push(3, filled(s4, 1), 10));
  fs.push_back(kv.push(4, filled(s4, 1), 5));
  fs.push_back(kv.push(5, filled(s4, 1), 10));
  rec.release.open();
  blocked.get();
  for (auto& f : fs)
    f.get();
  EXPECT_EQ(rec.keys(), (std::vector<std::int64_t>{100, 3, 5, 4, 1, 2}));
}

// A high-priority op queued behind low-priority ops of its own key lifts that key: the key's
// ops still run in order, ahead of a medium-priority key.
TEST_P(Ordering, PriorityIsInheritedByTheKeysQueue) {
  auto kv = one_shard_store(GetParam());
  recorder rec;
  rec.blocker = 100;
  kv.init({100, 1, 2}, {filled(s4, 0), filled(s4, 0), filled(s4, 0)}).get();
  kv.set_updater(rec.fn());
  auto blocked = kv.push(100, filled(s4, 1));
  rec.entered.wait();
  auto f2 = kv.push(2, filled(s4, 7), 50);
  auto f1 = kv.push(1, filled(s4, 1), 0);
  tensor out = tensor::zeros(s4);
  auto p1 = kv.pull(1, out, 100);
  rec.release.open();
  blocked.get();
  f1.get();
  f2.get();
  p1.get();
  EXPECT_EQ(rec.keys(), (std::vector<std::int64_t>{100, 1, 2}));
  EXPECT_TRUE(all_equal(out, 1));  // the pull saw the push issued before it
}

// One key: whatever the priorities, ops take effect in issue order; each pull sees exactly
// the pushes issued before it.
TEST_P(Ordering, PerKeyOrderHoldsWhateverThePriorities) {
  auto kv = one_shard_store(GetParam());
  recorder rec;
  rec.blocker = 100;
  kv.init({100, 1}, {filled(s4, 0), filled(s4, 0)}).get();
  kv.set_updater(rec.fn());
  auto blocked = kv.push(100, filled(s4, 1));
  rec.entered.wait();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> prio(-100, 100);
  std::vector<kvactor::future<void>> fs;
  std::vector<std::pair<tensor, float>> pulls;
  std::vector<float> pushed;
  for (int i = 1; i <= 40; ++i) {
    fs.push_back(kv.push(1, filled(s4, i), prio(rng)));
    pushed.push_back(static_cast<float>(i));
    if (i % 5 == 0) {
      tensor out = tensor::zeros(s4);
      fs.push_back(kv.pull(1, out, prio(rng)));
      pulls.emplace_back(out, static_cast<float>(i));
    }
  }
  rec.release.open();
  blocked.get();
  for (auto& f : fs)
    f.get();
  std::vector<float> seen;
  for (auto& [k, v] : rec.log)
    if (k == 1) seen.push_back(v);
  EXPECT_EQ(seen, pushed);
  for (auto& [out, v] : pulls)
    EXPECT_TRUE(all_equal(out, v));
}

// A pull issued right after a push sees it, on every shard and with no waiting in between.
TEST_P(Ordering, PullAfterPushSeesIt) {
  kvactor::options o;
  o.parallel_threshold_bytes = GetParam();
  auto kv = kvactor::create("local", o);
  const int keys = 16;
  for (int k = 0; k < keys; ++k)
    kv.init(k, filled(s4, 0));
  for (int round = 1; round <= 50; ++round) {
    std::vector<tensor> outs;
    for (int k = 0; k < keys; ++k) {
      kv.push(k, filled(s4, round * 100 + k), (round * 7 + k) % 13);
      outs.push_back(tensor::zeros(s4));
      kv.pull(k, outs.back(), -((round + k) % 11));
    }
    for (int k = 0; k < keys; ++k)
      ASSERT_TRUE(all_equal(outs[k], round * 100 + k));
  }
  kv.wait_all();
  EXPECT_EQ(kv.outstanding(), 0u);
}

// Parameter: the parallel threshold — 1 MiB keeps these small values inline on the shard;
// 0 sends every step through the reducer pool.
INSTANTIATE_TEST_SUITE_P(InlineAndPool, Ordering, ::testing::Values(std::size_t{1} << 20, 0),
                         [](const auto& info) { return info.param ? "inline" : "pool"; });

// Leases: a pushed tensor may be overwritten right after push() returns; the write waits
// until the store has read it, so the store keeps the pushed value.
TEST(Leases, WritingAPushedTensorWaitsForTheStore) {
  auto kv = one_shard_store();
  recorder rec;
  rec.blocker = 100;
  kv.init({100, 1}, {filled(s4, 0), filled(s4, 0)}).get();
  kv.set_updater(rec.fn());
  auto blocked = kv.push(100, filled(s4, 1));
  rec.entered.wait();
  tensor grad = filled(s4, 5);
  auto pushed = kv.push(1, grad);  // queued behind the blocked update
  EXPECT_EQ(grad.storage_ptr()->pending_reads(), 1);
  std::thread writer([&] { grad.fill(-5); });  // waits for the read lease
  rec.release.open();
  writer.join();
  pushed.get();
  blocked.get();
  tensor out = tensor::zeros(s4);
  kv.pull(1, out).get();
  EXPECT_TRUE(all_equal(out, 5));
  EXPECT_TRUE(all_equal(grad, -5));
}

// Reading a pull's output without waiting on its future sees the pulled value.
TEST(Leases, ReadingAPullOutputWaitsForThePull) {
  auto kv = one_shard_store();
  recorder rec;
  rec.blocker = 100;
  kv.init({100, 1}, {filled(s4, 0), filled(s4, 9)}).get();
  kv.set_updater(rec.fn());
  auto blocked = kv.push(100, filled(s4, 1));
  rec.entered.wait();
  tensor out = tensor::zeros(s4);
  auto pulled = kv.pull(1, out);
  EXPECT_EQ(out.storage_ptr()->pending_writes(), 1);
  EXPECT_FALSE(pulled.ready());
  std::thread reader([&] { EXPECT_TRUE(all_equal(out, 9)); });
  rec.release.open();
  reader.join();
  pulled.get();  // leases are released just before the future completes
  EXPECT_EQ(out.storage_ptr()->pending_writes(), 0);
  blocked.get();
}

// The store's destructor waits for what is outstanding.
TEST(Shutdown, DestroyingTheStoreCompletesOutstandingWork) {
  std::vector<kvactor::future<void>> fs;
  tensor out = tensor::zeros(s4);
  {
    auto kv = kvactor::create("local");
    kv.init(1, filled(s4, 0));
    for (int i = 0; i < 100; ++i)
      fs.push_back(kv.push(1, filled(s4, i)));
    fs.push_back(kv.pull(1, out));
  }
  for (auto& f : fs) {
    ASSERT_TRUE(f.ready());
    EXPECT_TRUE(f.get_status().is_ok()) << f.get_status().to_string();
  }
  EXPECT_TRUE(all_equal(out, 99));
}
