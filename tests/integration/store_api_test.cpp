// The whole local-store API, run under several configurations: everything inline on the
// shards, everything through the reducer pool (threshold 0), one shard, several reducer
// threads.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <thread>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::dtype;
using kvactor::tensor;
using kvactor::testing::all_equal;
using kvactor::testing::all_near;
using kvactor::testing::filled;

namespace {

struct config {
  const char* name;
  kvactor::options opts;
};

kvactor::options make(std::size_t shards, std::size_t reducers, std::size_t threshold) {
  kvactor::options o;
  o.num_shards = shards;
  o.reducer_threads = reducers;
  o.parallel_threshold_bytes = threshold;
  return o;
}

// What ctest and failure messages show for a configuration (GoogleTest would dump its bytes).
void PrintTo(const config& c, std::ostream* os) {
  const std::size_t t = c.opts.parallel_threshold_bytes;
  *os << "shards " << c.opts.num_shards << ", reducers " << c.opts.reducer_threads << ", threshold "
      << (t && t % (1 << 20) == 0 ? t >> 20 : t) << (t && t % (1 << 20) == 0 ? " MiB" : " B");
}

const config configs[] = {
    {"defaults", kvactor::options{}},
    {"all_pool_1_thread", make(0, 1, 0)},
    {"all_pool_3_threads", make(3, 3, 0)},
    {"one_shard", make(1, 0, std::size_t{1} << 20)},
};

tensor iota(const kvactor::shape& s, double start, dtype t = dtype::float32) {
  tensor x = tensor::zeros(s, t);
  for (std::size_t i = 0; i < x.size(); ++i)
    x.set(i, start + static_cast<double>(i % 97));
  return x;
}

}  // namespace

class StoreApi : public ::testing::TestWithParam<config> {
 protected:
  kvactor::kvstore kv = kvactor::create("local", GetParam().opts);
};

TEST_P(StoreApi, RepeatedKeysInOneCallAreSummed) {
  kv.init({1, 2}, {filled({5}, 0), filled({5}, 0)}).get();
  kv.push({1, 2, 1, 1}, {filled({5}, 1), filled({5}, 2), filled({5}, 3), filled({5}, 4)}).get();
  tensor a = tensor::zeros({5}), b = tensor::zeros({5}), c = tensor::zeros({5});
  kv.pull({1, 2, 1}, {a, b, c}).get();
  EXPECT_TRUE(all_equal(a, 8));
  EXPECT_TRUE(all_equal(b, 2));
  EXPECT_TRUE(all_equal(c, 8));
  // Nested lists with a repeated key: all of its device values are summed.
  std::vector<std::vector<tensor>> vals = {{filled({5}, 1), filled({5}, 1)}, {filled({5}, 5)}};
  kv.push({1, 1}, vals).get();
  kv.pull(1, a).get();
  EXPECT_TRUE(all_equal(a, 7));
}

TEST_P(StoreApi, StringKeys) {
  kv.init({"weight", "bias"}, {filled({3, 2}, 1), filled({2}, 2)}).get();
  kv.push("weight", {filled({3, 2}, 1), filled({3, 2}, 2)});
  tensor w = tensor::zeros({3, 2}), b = tensor::zeros({2});
  kv.pull({"weight", "bias"}, {w, b}).get();
  EXPECT_TRUE(all_equal(w, 3));
  EXPECT_TRUE(all_equal(b, 2));
}

TEST_P(StoreApi, Int64KeysKeepAllTheirBits) {
  const std::int64_t big = (std::int64_t{1} << 40) + 7, neg = -(std::int64_t{1} << 50);
  kv.init({big, big - (std::int64_t{1} << 32), neg},
          {filled({2}, 1), filled({2}, 2), filled({2}, 3)})
      .get();
  tensor a = tensor::zeros({2}), b = tensor::zeros({2}), c = tensor::zeros({2});
  kv.pull({big, big - (std::int64_t{1} << 32), neg}, {a, b, c}).get();
  EXPECT_TRUE(all_equal(a, 1));
  EXPECT_TRUE(all_equal(b, 2));
  EXPECT_TRUE(all_equal(c, 3));
}

TEST_P(StoreApi, PushPullInPlaceAndIntoOutputs) {
  kv.init(1, filled({8}, 0)).get();
  std::vector<tensor> devs = {filled({8}, 1), filled({8}, 2), filled({8}, 3)};
  kv.pushpull(1, devs).get();  // no outs: written back into the values
  for (const auto& d : devs)
    EXPECT_TRUE(all_equal(d, 6));
  tensor out1 = tensor::zeros({8}), out2 = tensor::zeros({8});
  kv.pushpull(1, filled({8}, 4), std::vector<tensor>{out1, out2}).get();
  EXPECT_TRUE(all_equal(out1, 4));
  EXPECT_TRUE(all_equal(out2, 4));
}

TEST_P(StoreApi, BroadcastLists) {
  std::vector<tensor> outs = {tensor::zeros({4}), tensor::zeros({4})};
  std::vector<std::vector<tensor>> nested = {{tensor::zeros({4})}, {tensor::zeros({4})}};
  kv.broadcast({10, 11}, {filled({4}, 5), filled({4}, 6)}, nested).get();
  EXPECT_TRUE(all_equal(nested[0][0], 5));
  EXPECT_TRUE(all_equal(nested[1][0], 6));
  kv.broadcast(12, filled({4}, 7), outs).get();
  EXPECT_TRUE(all_equal(outs[0], 7));
  EXPECT_TRUE(all_equal(outs[1], 7));
}

TEST_P(StoreApi, EveryDtypeSumsAndRoundTrips) {
  std::int64_t k = 0;
  for (auto t : kvactor::all_dtypes) {
    SCOPED_TRACE(kvactor::to_string(t));
    kv.init(k, tensor::zeros({33}, t)).get();
    kv.push(k, {iota({33}, 1, t), iota({33}, 2, t), iota({33}, 3, t)}).get();
    tensor out = tensor::zeros({33}, t);
    kv.pull(k, out).get();
    for (std::size_t i = 0; i < out.size(); ++i) {
      const double expect = 3 * static_cast<double>(i % 97) + 6;
      ASSERT_EQ(out.at(i), expect) << "element " << i;  // exact in every dtype at this range
    }
    ++k;
  }
}

TEST_P(StoreApi, BigArraysAcrossThePool) {
  // 3 MiB values: above the default threshold, so reduce, copy and update run in parallel
  // chunks where the configuration allows it.
  const kvactor::shape s{768 * 1024};
  kv.init({1, 2}, {iota(s, 0), iota(s, 1)}).get();
  kv.push(1, {iota(s, 0), iota(s, 0), iota(s, 0)}).get();
  std::vector<tensor> outs = {tensor::zeros(s), tensor::zeros(s)};
  kv.pull(1, outs).get();
  for (const auto& o : outs) {
    const float* p = o.data<float>();
    for (std::size_t i = 0; i < o.size(); i += 4099)
      ASSERT_EQ(p[i], 3.0f * (i % 97));
  }
  // The optimizer's element-wise update over the pool: w = w - lr * g.
  kv.set_optimizer(kvactor::sgd_config(0.5)).get();
  kv.pushpull(2, filled(s, 2), outs[0]).get();
  const float* p = outs[0].data<float>();
  for (std::size_t i = 0; i < outs[0].size(); i += 4099)
    ASSERT_EQ(p[i], 1.0f + (i % 97) - 1.0f);
}

TEST_P(StoreApi, SgdWithMomentumMatchesTheFormula) {
  // MXNet's SGD with momentum 0.9, wd 0.01, rescale 0.5, clip 1.5, lr 0.1 over 5 steps,
  // with gradients from two devices summed first.
  kv.init(1, filled({16}, 1.0)).get();
  kv.set_optimizer(kvactor::sgd_config(0.1, 0.9, 0.01, 0.5, 1.5)).get();
  double w = 1.0, m = 0.0;
  tensor out = tensor::zeros({16});
  for (int step = 1; step <= 5; ++step) {
    const double g0 = 0.7 * step, g1 = 0.4;
    kv.push(1, {filled({16}, g0), filled({16}, g1)});
    double g = std::min(1.5, std::max(-1.5, 0.5 * static_cast<double>(static_cast<float>(g0) +
                                                                      static_cast<float>(g1))));
    m = 0.9 * m - 0.1 * 0.01 * w - 0.1 * g;
    w += m;
  }
  kv.pull(1, out).get();
  EXPECT_TRUE(all_near(out, w, 1e-5));
}

TEST_P(StoreApi, FuturesCompose) {
  kv.init(1, filled({2}, 0)).get();
  std::atomic<int> seen{0};
  auto f = kv.push(1, filled({2}, 3)).then([&](const kvactor::future<void>& done) {
    done.get();
    seen = 1;
    return 42;
  });
  EXPECT_EQ(f.get(), 42);
  EXPECT_EQ(seen.load(), 1);
  auto g = kv.pull(2, tensor::zeros({2})).then([](const kvactor::future<void>& done) {
    done.get();  // throws not_initialized, which the chained future carries
    return 0;
  });
  EXPECT_EQ(g.get_status().code(), kvactor::errc::not_initialized);
  EXPECT_TRUE(g.wait_for(std::chrono::seconds(0)));
}

TEST_P(StoreApi, ManyThreadsManyKeys) {
  const int threads = 4, keys_per = 8, rounds = 60;
  for (int k = 0; k < threads * keys_per; ++k)
    kv.init(k, filled({64}, 0));
  kv.init(1000, filled({64}, 0)).get();
  kv.set_updater([](const kvactor::key&, const tensor& in, tensor& stored) {
    float* s = stored.data<float>();
    const float* x = in.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] += x[i];
  });
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int r = 1; r <= rounds; ++r) {
        for (int j = 0; j < keys_per; ++j) {
          const int k = t * keys_per + j;
          kv.push(k, filled({64}, 1), r % 3);
          tensor out = tensor::zeros({64});
          kv.pull(k, out, -(r % 5));
          if (!all_equal(out, r)) ++bad;  // this thread's pushes so far, seen in order
        }
        kv.push(1000, filled({64}, 1));  // a key shared by all threads
      }
    });
  }
  for (auto& t : ts)
    t.join();
  kv.wait_all();
  EXPECT_EQ(bad.load(), 0);
  tensor shared = tensor::zeros({64});
  kv.pull(1000, shared).get();
  EXPECT_TRUE(all_equal(shared, threads * rounds));
}

TEST_P(StoreApi, ViewsOfUserMemory) {
  std::vector<double> mem(10);
  std::iota(mem.begin(), mem.end(), 0.0);
  kv.init(5, tensor::view(mem.data(), {10})).get();
  std::vector<double> out(10, -1);
  kv.pull(5, tensor::view(out.data(), {10})).get();
  EXPECT_EQ(out, mem);
}

INSTANTIATE_TEST_SUITE_P(Configs, StoreApi, ::testing::ValuesIn(configs),
                         [](const auto& info) { return std::string{info.param.name}; });
