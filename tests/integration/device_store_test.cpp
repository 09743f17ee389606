// Stores with values and outputs on CUDA devices, every result against the same calls on CPU
// tensors: "local" copies device values through host memory; "device" sums multi-device
// pushes on the devices through its reducer graph (flat, tree, custom; the ring stages through
// host memory) and copies results back to device outputs.
//
// These run wherever devices exist: on two emulated devices in CI (KVACTOR_EMULATE_CUDA=2, see
// tests/integration/CMakeLists.txt) and on a real GPU machine (label gpu), where with one
// GPU the second logical device maps onto cuda(0). Without devices they skip.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_memory.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/row_sparse.hpp"
#include "test_util.hpp"

using kvactor::device;
using kvactor::dtype;
using kvactor::tensor;
using kvactor::topology;

namespace {

device dev(int i) {
  return device::cuda(i % kvactor::cuda_device_count());
}

#define NEED_DEVICES()                                                     \
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  static_assert(true)

// A host tensor of n small integers (exact sums in every dtype), shifted by `seed`.
tensor host_values(std::int64_t n, dtype t, int seed) {
  tensor x = tensor::zeros({n}, t);
  for (std::int64_t i = 0; i < n; ++i)
    x.set(static_cast<std::size_t>(i), static_cast<double>((i * 7 + seed) % 11));
  return x;
}

// k values, value j on logical device j, and the same values on the host.
struct values {
  std::vector<tensor> on_devices, on_host;
};
values make_values(std::size_t k, std::int64_t n, dtype t, int seed) {
  values v;
  for (std::size_t j = 0; j < k; ++j) {
    v.on_host.push_back(host_values(n, t, seed + static_cast<int>(j)));
    v.on_devices.push_back(v.on_host.back().copy_to(dev(static_cast<int>(j))));
  }
  return v;
}

std::vector<tensor> device_outs(std::size_t count, std::int64_t n, dtype t) {
  std::vector<tensor> outs;
  for (std::size_t j = 0; j < count; ++j)
    outs.push_back(tensor::full({n}, -1.0, t, dev(static_cast<int>(j))));
  return outs;
}

// The calls of a training step, on device values in a store of `type` and on host values in a
// local store with the same options (the CPU path); every output must match.
void compare_with_host(const std::string& type, const kvactor::options& o, dtype t) {
  auto on_dev = kvactor::create(type, o);
  auto on_host = kvactor::create("local", o);  // the CPU path: host values, host memory
  for (std::int64_t n : {1, 15, 1001, 4099}) {
    const int key = static_cast<int>(n);
    // init from a device value on one, the same host value on the other.
    const tensor init = host_values(n, t, 5);
    on_dev.init(key, init.copy_to(dev(1))).get();
    on_host.init(key, init).get();
    for (std::size_t k : {1u, 2u, 4u}) {
      for (int round = 0; round < 2; ++round) {
        const auto v = make_values(k, n, t, round * 3 + static_cast<int>(k));
        auto outs = device_outs(2, n, t);
        std::vector<tensor> host_outs = {tensor::zeros({n}, t), tensor::zeros({n}, t)};
        on_dev.pushpull(key, v.on_devices, outs, round).get();
        on_host.pushpull(key, v.on_host, host_outs, round).get();
        for (std::size_t j = 0; j < outs.size(); ++j) {
          EXPECT_TRUE(outs[j].device() == dev(static_cast<int>(j)));
          ASSERT_EQ(outs[j].to_vector(), host_outs[j].to_vector())
              << type << " n=" << n << " k=" << k << " round " << round << " out " << j;
        }
        // push then pull, as separate calls.
        on_dev.push(key, v.on_devices).get();
        on_host.push(key, v.on_host).get();
        auto pulled = device_outs(3, n, t);
        tensor host_pulled = tensor::zeros({n}, t);
        on_dev.pull(key, pulled).get();
        on_host.pull(key, host_pulled).get();
        for (const auto& p : pulled)
          ASSERT_EQ(p.to_vector(), host_pulled.to_vector());
      }
    }
  }
}

void expect_errc(kvactor::future<void> f, kvactor::errc want) {
  try {
    f.get();
    ADD_FAILURE() << "no error";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), want) << e.what();
  }
}

kvactor::options with(const topology& t) {
  kvactor::options o;
  o.reduction = std::make_shared<const topology>(t);
  o.parallel_threshold_bytes = 0;  // the pool's path too
  return o;
}

}  // namespace

TEST(DeviceValues, LocalStoreStagesThroughHostMemory) {
  NEED_DEVICES();
  for (auto t : {dtype::float32, dtype::float16, dtype::int64})
    compare_with_host("local", kvactor::options{}, t);
}

TEST(DeviceValues, DeviceStoreFlat) {
  NEED_DEVICES();
  for (auto t : {dtype::float32, dtype::bfloat16, dtype::int32, dtype::float64})
    compare_with_host("device", with(topology::flat()), t);
}

TEST(DeviceValues, DeviceStoreTreeAndRing) {
  NEED_DEVICES();
  compare_with_host("device", with(topology::tree(2)), dtype::float32);
  compare_with_host("device", with(topology::ring()), dtype::float32);
}

TEST(DeviceValues, DeviceStoreCustomGraph) {
  NEED_DEVICES();
  // A chain: each node adds the next slot to the sum before it (a ladder, not a tree).
  kvactor::reduction_graph g;
  std::size_t prev = g.add_node();
  g.connect_slot(0, prev);
  g.connect_slot(1, prev);
  for (std::size_t slot = 2; slot < 4; ++slot) {
    const std::size_t next = g.add_node();
    g.connect(prev, next);
    g.connect_slot(slot, next);
    prev = next;
  }
  g.set_root(prev);
  auto kv = kvactor::create("device", with(topology::custom(g)));
  const std::int64_t n = 999;
  kv.init(7, tensor::zeros({n})).get();
  const auto v = make_values(4, n, dtype::float32, 1);
  auto outs = device_outs(2, n, dtype::float32);
  kv.pushpull(7, v.on_devices, outs).get();
  for (std::int64_t i = 0; i < n; i += 37) {
    double want = 0;
    for (const auto& h : v.on_host)
      want += h.at(static_cast<std::size_t>(i));
    for (const auto& out : outs)
      ASSERT_EQ(out.at(static_cast<std::size_t>(i)), want);
  }
}

// Three pushes of k values, on devices in a local and a device store and on the host in a
// local store (the CPU path), all set up by `setup`; the final pulls must match.
void compare_pushes(const std::function<void(kvactor::kvstore&)>& setup, std::size_t k,
                    std::int64_t n, double init, dtype t = dtype::float32) {
  for (const char* type : {"local", "device"}) {
    auto on_dev = kvactor::create(type);
    auto on_host = kvactor::create("local");  // the CPU path
    setup(on_dev);
    setup(on_host);
    on_dev.init(1, tensor::full({n}, init, t).copy_to(dev(0))).get();
    on_host.init(1, tensor::full({n}, init, t)).get();
    for (int step = 0; step < 3; ++step) {
      const auto v = make_values(k, n, t, step);
      on_dev.push(1, v.on_devices).get();
      on_host.push(1, v.on_host).get();
    }
    auto out = device_outs(1, n, t);
    tensor host_out = tensor::zeros({n}, t);
    on_dev.pull(1, out).get();
    on_host.pull(1, host_out).get();
    EXPECT_EQ(out[0].to_vector(), host_out.to_vector()) << type << " " << kvactor::to_string(t);
  }
}

TEST(DeviceValues, OptimizersOnDeviceValuesMatchHost) {
  NEED_DEVICES();
  // SGD with momentum and Adam run on the key's device in the device store.
  compare_pushes(
      [](kvactor::kvstore& kv) { kv.set_optimizer(kvactor::sgd_config(0.25, 0.9)).get(); }, 2, 513,
      1.0);
  compare_pushes(
      [](kvactor::kvstore& kv) {
        kv.set_optimizer(kvactor::optimizer_config{"adam", {{"learning_rate", 0.1}, {"wd", 0.01}}})
            .get();
      },
      3, 300, 0.5);
  // Multi-precision: float16 and bfloat16 weights updated through float32 masters.
  for (auto t : {dtype::float16, dtype::bfloat16}) {
    compare_pushes(
        [](kvactor::kvstore& kv) {
          kv
              .set_optimizer(kvactor::optimizer_config{
                  "sgd", {{"learning_rate", 0.1}, {"momentum", 0.9}, {"multi_precision", 1}}})
              .get();
        },
        2, 129, 1.0, t);
    compare_pushes(
        [](kvactor::kvstore& kv) {
          kv.set_optimizer(kvactor::optimizer_config{
                               "adam", {{"learning_rate", 0.01}, {"multi_precision", 1}}})
              .get();
        },
        2, 65, 0.5, t);
  }
  // Optimizers that run on host memory only (here FTRL) and
  // custom updaters: the device store moves the key to host memory first.
  compare_pushes(
      [](kvactor::kvstore& kv) {
        kv.set_optimizer(kvactor::optimizer_config{"ftrl", {{"learning_rate", 0.1}}}).get();
      },
      2, 77, 0.0);
  compare_pushes(
      [](kvactor::kvstore& kv) {
        kv.set_updater([](const kvactor::key&, const tensor& merged, tensor& stored) {
          for (std::size_t i = 0; i < stored.size(); ++i)
            stored.set(i, stored.at(i) * 0.5 + merged.at(i));
        });
      },
      2, 40, 2.0);
}

TEST(DeviceValues, DeviceStorePlacesKeysLargestFirstOnTheLeastLoadedDevice) {
  if (kvactor::cuda_device_count() < 2) GTEST_SKIP() << "needs two devices";
  auto live = [](int d) {
    return kvactor::device_pool::of(device::cuda(d)).get_stats().live_bytes;
  };
  const std::size_t before0 = live(0), before1 = live(1);
  auto kv = kvactor::create("device");
  constexpr std::int64_t mib = 1 << 18;  // float32 elements per MiB
  // Smallest first in the call: placing them in that order would give 6 and 10 MiB.
  kv.init({1, 2, 3, 4}, {tensor::zeros({2 * mib}), tensor::zeros({2 * mib}),
                         tensor::zeros({4 * mib}), tensor::zeros({8 * mib})})
      .get();
  EXPECT_EQ(live(0) - before0, std::size_t{8} << 20);
  EXPECT_EQ(live(1) - before1, std::size_t{8} << 20);
  // The values are where they were placed, and pull back intact.
  tensor out = tensor::full({8 * mib}, 3.0);
  kv.pull(4, out).get();
  EXPECT_EQ(out.at(0), 0.0);
  EXPECT_EQ(out.at(static_cast<std::size_t>(8 * mib - 1)), 0.0);
}

TEST(DeviceValues, DeviceStoreStatesSaveAndLoad) {
  NEED_DEVICES();
  const std::string file = ::testing::TempDir() + "kvactor_device_states.bin";
  const std::int64_t n = 257;
  const auto cfg = kvactor::optimizer_config{"adam", {{"learning_rate", 0.05}}};
  auto train = [&](kvactor::kvstore& kv, int from, int to, bool on_devices) {
    for (int step = from; step < to; ++step) {
      const auto v = make_values(2, n, dtype::float32, step);
      kv.push(9, on_devices ? v.on_devices : v.on_host).get();
    }
  };
  // Straight through on a host store; with a save and a load in the middle on device stores.
  auto host = kvactor::create("local");
  host.set_optimizer(cfg).get();
  host.init(9, tensor::ones({n})).get();
  train(host, 0, 4, false);
  auto first = kvactor::create("device");
  first.set_optimizer(cfg).get();
  first.init(9, tensor::ones({n})).get();
  train(first, 0, 2, true);
  first.save_optimizer_states(file).get();
  tensor mid = tensor::zeros({n});
  first.pull(9, mid).get();
  auto second = kvactor::create("device");
  second.set_optimizer(cfg).get();
  second.init(9, mid).get();
  second.load_optimizer_states(file).get();
  train(second, 2, 4, true);
  auto out = device_outs(1, n, dtype::float32);
  tensor want = tensor::zeros({n});
  second.pull(9, out).get();
  host.pull(9, want).get();
  EXPECT_EQ(out[0].to_vector(), want.to_vector());
  std::remove(file.c_str());
}

TEST(DeviceValues, DeviceStoreRowSparseCalls) {
  NEED_DEVICES();
  auto kv = kvactor::create("device");
  kv.init(2, tensor::from<float>({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2})).get();
  // Pulled rows come from the key's device: runs of consecutive rows and single ones.
  tensor out = tensor::full({4, 2}, -1.0);
  kv.row_sparse_pull(2, out, tensor::from<std::int64_t>({3, 0, 1}, {3})).get();
  EXPECT_EQ(out.to_vector(), (std::vector<double>{1, 2, 3, 4, 0, 0, 7, 8}));
  // A row-sparse push without an updater (merged on the key's device); everything still works
  // on the key after it.
  kv.push(2, kvactor::row_sparse_tensor::from_rows({2}, tensor::from<float>({10, 20}, {1, 2}),
                                                   kvactor::shape{4, 2}))
      .get();
  std::vector<tensor> outs = {tensor::zeros({4, 2}, dtype::float32, dev(0)),
                              tensor::zeros({4, 2}, dtype::float32, dev(1))};
  kv.pull(2, outs).get();
  for (const auto& o : outs)
    EXPECT_EQ(o.to_vector(), (std::vector<double>{0, 0, 0, 0, 10, 20, 0, 0}));
  kv.pushpull(2,
              std::vector<tensor>{tensor::ones({4, 2}, dtype::float32, dev(0)),
                                  tensor::ones({4, 2}, dtype::float32, dev(1))},
              outs)
      .get();
  for (const auto& o : outs)
    EXPECT_EQ(o.to_vector(), std::vector<double>(8, 2.0));
}

TEST(DeviceValues, BroadcastToDeviceOutputsAndPriorities) {
  NEED_DEVICES();
  auto kv = kvactor::create("device");
  const std::int64_t n = 100;
  auto outs = device_outs(2, n, dtype::float32);
  kv.broadcast(3, tensor::full({n}, 2.5).copy_to(dev(0)), outs).get();
  for (const auto& out : outs)
    EXPECT_EQ(out.to_vector(), std::vector<double>(n, 2.5));
  // Many keys in flight at two priorities: each key's push then pull stay in order.
  std::vector<kvactor::future<void>> pending;
  std::vector<std::vector<tensor>> pulled;
  for (int key = 10; key < 30; ++key)
    kv.init(key, tensor::zeros({n})).get();
  for (int key = 10; key < 30; ++key) {
    const auto v = make_values(2, n, dtype::float32, key);
    pending.push_back(kv.push(key, v.on_devices, key % 2 ? 5 : 0));
    pulled.push_back(device_outs(2, n, dtype::float32));
    pending.push_back(kv.pull(key, pulled.back(), key % 2 ? 5 : 0));
  }
  for (auto& f : pending)
    f.get();
  for (int key = 10; key < 30; ++key) {
    const auto v = make_values(2, n, dtype::float32, key);
    std::vector<double> want(n);
    for (std::int64_t i = 0; i < n; ++i)
      want[static_cast<std::size_t>(i)] = v.on_host[0].at(static_cast<std::size_t>(i)) +
                                          v.on_host[1].at(static_cast<std::size_t>(i));
    for (const auto& out : pulled[static_cast<std::size_t>(key - 10)])
      ASSERT_EQ(out.to_vector(), want) << "key " << key;
  }
}

TEST(DeviceValues, BadDeviceInputLeavesTheStoreAsItWas) {
  NEED_DEVICES();
  auto kv = kvactor::create("device");
  const std::int64_t n = 64;
  kv.init(1, tensor::full({n}, 3.0)).get();
  // A device value of the wrong shape or type, among good ones.
  expect_errc(kv.push(1, {tensor::ones({n}, dtype::float32, dev(0)),
                          tensor::ones({n + 1}, dtype::float32, dev(1))}),
              kvactor::errc::shape_mismatch);
  expect_errc(kv.push(1, {tensor::ones({n}, dtype::float32, dev(0)),
                          tensor::ones({n}, dtype::float16, dev(1))}),
              kvactor::errc::dtype_mismatch);
  // A row-sparse pull with an id out of range writes nothing, into a device output neither.
  tensor rows_out = tensor::full({n}, -1.0, dtype::float32, dev(0));
  expect_errc(kv.row_sparse_pull(1, rows_out, tensor::from<std::int64_t>({n}, {1})),
              kvactor::errc::out_of_range);
  EXPECT_EQ(rows_out.to_vector(), std::vector<double>(n, -1.0));
  auto out = device_outs(2, n, dtype::float32);
  kv.pull(1, out).get();
  for (const auto& o : out)
    EXPECT_EQ(o.to_vector(), std::vector<double>(n, 3.0));
}

TEST(DeviceValues, CompressedPushesOfDeviceValuesMatchHost) {
  NEED_DEVICES();
  compare_pushes([](kvactor::kvstore& kv) { kv.set_gradient_compression("2bit", 0.5).get(); }, 3,
                 1001, 0.0);
}

TEST(DeviceValues, DeviceStoreUpdaterErrorsLeaveTheValue) {
  NEED_DEVICES();
  auto kv = kvactor::create("device");
  kv.set_optimizer(kvactor::sgd_config(0.1, 0.9)).get();
  // SGD updates floating-point weights: an int32 key's push fails on the device as on the host.
  kv.init(1, tensor::full({8}, 3.0, dtype::int32)).get();
  expect_errc(kv.push(1, std::vector<tensor>{tensor::ones({8}, dtype::int32, dev(0)),
                                             tensor::ones({8}, dtype::int32, dev(1))}),
              kvactor::errc::updater_failed);
  tensor ints = tensor::zeros({8}, dtype::int32);
  kv.pull(1, ints).get();
  EXPECT_EQ(ints.to_vector(), std::vector<double>(8, 3.0));
  // A custom updater that throws (the key moves to host memory first): same error, same value.
  kv.set_updater(
      [](const kvactor::key&, const tensor&, tensor&) { throw std::runtime_error("refused"); });
  kv.init(2, tensor::full({8}, 5.0)).get();
  expect_errc(kv.push(2, tensor::ones({8}, dtype::float32, dev(1))), kvactor::errc::updater_failed);
  auto outs = device_outs(2, 8, dtype::float32);
  kv.pull(2, outs).get();
  for (const auto& o : outs)
    EXPECT_EQ(o.to_vector(), std::vector<double>(8, 5.0));
}
