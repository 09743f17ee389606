// Row-sparse values whose rows (and indices) live on devices, and row_sparse_pull into device
// outputs with row ids on devices (issue 11, items 2 and 3), in the local and device stores:
// the results are exactly those of the same calls on host tensors.
//
// Every test runs everywhere. With CUDA devices (two emulated ones in CI, KVACTOR_EMULATE_CUDA=2,
// whose memory faults on any host access; real GPUs, label gpu) the tensors are put on them;
// without devices they stay on the host and the same expectations hold (the CPU run).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "code_of.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/row_sparse.hpp"
#include "test_util.hpp"

using kvactor::device;
using kvactor::dtype;
using kvactor::errc;
using kvactor::row_sparse_tensor;
using kvactor::shape;
using kvactor::tensor;
using kvactor::testing::code_of;

namespace {

const shape s53{5, 3};

bool devices() {
  return kvactor::cuda_device_count() > 0;
}

// Logical device i: a CUDA device when there are any, else the host.
device dev(int i) {
  return devices() ? device::cuda(i % kvactor::cuda_device_count()) : device::cpu();
}

tensor on(const tensor& t, int i) {
  return t.copy_to(dev(i));
}

// Rows of s53 given by sorted ids, their values i*10 + column + seed, on logical device i
// (indices there too when ids_on_device).
row_sparse_tensor rows_on(std::vector<std::int64_t> ids, double seed, dtype t, int i,
                          bool ids_on_device = true) {
  const auto n = static_cast<std::int64_t>(ids.size());
  tensor data = tensor::zeros({n, 3}, t);
  for (std::int64_t r = 0; r < n; ++r)
    for (std::int64_t c = 0; c < 3; ++c)
      data.set(static_cast<std::size_t>(r * 3 + c), static_cast<double>(ids[r] * 10 + c) + seed);
  tensor idx = tensor::from(ids, {n});
  return row_sparse_tensor::from(ids_on_device ? on(idx, i) : idx, on(data, i), s53);
}

// The same rows with everything on the host.
row_sparse_tensor host_copy(const row_sparse_tensor& r) {
  return row_sparse_tensor::from(r.host_indices(), r.data().copy_to(device::cpu()), r.shape());
}

std::vector<double> dense_of(const row_sparse_tensor& r) {
  return r.to_dense().to_vector();
}

std::vector<double> pulled(kvactor::kvstore& kv, int key, dtype t, int i) {
  tensor out = tensor::full(s53, -1, t, dev(i));
  kv.pull(key, out).get();
  EXPECT_EQ(out.device(), dev(i));
  return out.to_vector();
}

const char* const stores[] = {"local", "device"};

}  // namespace

TEST(RowSparseDevice, TensorsKeepTheirRowsWhereTheyAre) {
  const auto r = rows_on({1, 3}, 0.5, dtype::float32, 1);
  EXPECT_EQ(r.device(), dev(1));
  EXPECT_EQ(r.indices().device(), dev(1));
  EXPECT_TRUE(r.host_indices().device().is_cpu());
  EXPECT_EQ(r.host_indices().to_vector(), (std::vector<double>{1, 3}));
  const tensor dense = r.to_dense();
  EXPECT_EQ(dense.device(), dev(1));
  EXPECT_EQ(dense.to_vector(),
            (std::vector<double>{0, 0, 0, 10.5, 11.5, 12.5, 0, 0, 0, 30.5, 31.5, 32.5, 0, 0, 0}));
  // Indices on a device are checked like host ones.
  EXPECT_THROW(row_sparse_tensor::from(on(tensor::from<std::int64_t>({3, 1}, {2}), 0),
                                       on(tensor::zeros({2, 3}), 0), s53),
               kvactor::error);
  EXPECT_THROW(row_sparse_tensor::from(on(tensor::from<std::int64_t>({5}, {1}), 1),
                                       on(tensor::zeros({1, 3}), 1), s53),
               kvactor::error);
  // from_rows sums repeated rows of device rows and keeps them on that device.
  const auto m = row_sparse_tensor::from_rows(
      {3, 1, 3}, on(tensor::from<float>({1, 1, 1, 2, 2, 2, 4, 4, 4}, {3, 3}), 0), s53);
  EXPECT_EQ(m.device(), dev(0));
  EXPECT_EQ(m.host_indices().to_vector(), (std::vector<double>{1, 3}));
  EXPECT_EQ(m.data().to_vector(), (std::vector<double>{2, 2, 2, 5, 5, 5}));
  // from_dense of a device tensor: the non-zero rows, on that device.
  const auto d = row_sparse_tensor::from_dense(dense);
  EXPECT_EQ(d.device(), dev(1));
  EXPECT_EQ(dense_of(d), dense.to_vector());
}

TEST(RowSparseDevice, InitAndPushOfDeviceRows) {
  for (const char* type : stores) {
    for (dtype t : {dtype::float32, dtype::float16}) {
      SCOPED_TRACE(std::string{type} + " " + kvactor::to_string(t));
      auto kv = kvactor::create(type);
      const auto init = rows_on({0, 2}, 1, t, 1);
      kv.init(7, init).get();
      EXPECT_EQ(pulled(kv, 7, t, 0), dense_of(host_copy(init)));
      // Two devices' rows, row 3 in both (summed); without an updater the value becomes the
      // merged rows, zero elsewhere. Indices on the host for one of them.
      const auto a = rows_on({1, 3}, 0, t, 0);
      const auto b = rows_on({3, 4}, 2, t, 1, /*ids_on_device=*/false);
      kv.push(7, {a, b}).get();
      const std::vector<double> want{0, 0, 0, 10, 11, 12, 0, 0, 0, 62, 64, 66, 42, 43, 44};
      EXPECT_EQ(pulled(kv, 7, t, 0), want);
      EXPECT_EQ(pulled(kv, 7, t, 1), want);
      // A push with no rows at all zeroes the value, as on the host.
      kv.push(7, row_sparse_tensor::from(on(tensor::zeros({0}, dtype::int64), 0),
                                         on(tensor::zeros({0, 3}, t), 1), s53))
          .get();
      EXPECT_EQ(pulled(kv, 7, t, 1), std::vector<double>(15, 0.0));
    }
  }
}

// Lazy SGD (rows updated on the host), SGD with momentum updating the densified gradient (on
// the key's device in the device store) and a custom updater: every step the same as with
// host rows in a local store. Values are small multiples of 1/4: the arithmetic is exact.
TEST(RowSparseDevice, UpdatersOnDeviceRowsMatchHostRows) {
  const std::vector<kvactor::optimizer_config> configs = {
      kvactor::sgd_config(0.5),
      kvactor::optimizer_config{"sgd",
                                {{"learning_rate", 0.5}, {"momentum", 0.5}, {"lazy_update", 0}}},
  };
  for (const char* type : stores) {
    for (std::size_t c = 0; c <= configs.size(); ++c) {
      SCOPED_TRACE(std::string{type} + " config " + std::to_string(c));
      auto kv = kvactor::create(type);
      auto ref = kvactor::create("local");
      const tensor w0 = tensor::full(s53, 4);
      kv.init(3, on(w0, 0)).get();
      ref.init(3, w0).get();
      if (c < configs.size()) {
        kv.set_optimizer(configs[c]).get();
        ref.set_optimizer(configs[c]).get();
      } else {
        auto twice = [](const kvactor::key&, const tensor& g, tensor& w) {
          tensor host = w.copy_to(device::cpu());
          for (std::size_t i = 0; i < host.size(); ++i)
            host.set(i, host.at(i) + 2 * g.at(i));
          host.copy_to(w);
        };
        kv.set_updater(twice);
        ref.set_updater(twice);
      }
      for (int round = 0; round < 3; ++round) {
        const auto a = rows_on({0, 3}, round, dtype::float32, 0);
        const auto b = rows_on({3}, 1, dtype::float32, 1);
        kv.push(3, {a, b}).get();
        ref.push(3, {host_copy(a), host_copy(b)}).get();
        tensor want = tensor::zeros(s53);
        ref.pull(3, want).get();
        EXPECT_EQ(pulled(kv, 3, dtype::float32, round % 2), want.to_vector()) << "round " << round;
      }
    }
  }
}

TEST(RowSparseDevice, PullIntoDeviceOutputsWithDeviceRowIds) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    // Two keys (the device store puts them on different devices), one from a device value.
    tensor v = tensor::zeros(s53);
    for (std::size_t i = 0; i < v.size(); ++i)
      v.set(i, static_cast<double>(i) + 1);
    kv.init({1, 2}, {v, on(v, 1)}).get();
    auto expect_rows = [&](const tensor& out, std::vector<int> rows, device where) {
      EXPECT_EQ(out.device(), where);
      std::vector<double> want(15, 0.0);
      for (int r : rows)
        for (int c = 0; c < 3; ++c)
          want[static_cast<std::size_t>(r * 3 + c)] = static_cast<double>(r * 3 + c) + 1;
      EXPECT_EQ(out.to_vector(), want);
    };
    for (int key : {1, 2}) {
      // Outputs on both devices and the host; ids as int64 and float32 on devices, and int32 on
      // the host: unsorted, repeated, a run of consecutive rows.
      std::vector<tensor> outs = {tensor::full(s53, -1, dtype::float32, dev(0)),
                                  tensor::full(s53, -1, dtype::float32, dev(1)),
                                  tensor::full(s53, -1)};
      std::vector<tensor> ids = {on(tensor::from<std::int64_t>({4, 0, 1, 0}, {4}), 0),
                                 on(tensor::from<float>({2}, {1}), 1),
                                 tensor::from<std::int32_t>({3, 2}, {2})};
      kv.row_sparse_pull(key, outs, ids).get();
      expect_rows(outs[0], {0, 1, 4}, dev(0));
      expect_rows(outs[1], {2}, dev(1));
      expect_rows(outs[2], {2, 3}, device::cpu());
    }
    // One id tensor on a device for a list of keys, one output each.
    std::vector<tensor> outs = {tensor::full(s53, -1, dtype::float32, dev(1)),
                                tensor::full(s53, -1, dtype::float32, dev(0))};
    kv.row_sparse_pull({1, 2}, outs, on(tensor::from<std::int64_t>({3}, {1}), 0)).get();
    expect_rows(outs[0], {3}, dev(1));
    expect_rows(outs[1], {3}, dev(0));
    // After a lazy row-sparse push (the device store moves the key to host memory).
    kv.set_optimizer(kvactor::sgd_config(1.0)).get();
    kv.push(1, rows_on({2}, 0, dtype::float32, 1)).get();
    tensor out = tensor::full(s53, -1, dtype::float32, dev(1));
    kv.row_sparse_pull(1, out, on(tensor::from<std::int64_t>({2, 4}, {2}), 0)).get();
    EXPECT_EQ(out.to_vector(),
              (std::vector<double>{0, 0, 0, 0, 0, 0, 7 - 20, 8 - 21, 9 - 22, 0, 0, 0, 13, 14, 15}));
  }
}

TEST(RowSparseDevice, BadRowIdsLeaveDeviceOutputsAsTheyWere) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init(1, on(tensor::ones(s53), 1)).get();
    tensor out = tensor::full(s53, -1, dtype::float32, dev(0));
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, out, on(tensor::from<std::int64_t>({1, 5}, {2}), 1))),
              errc::out_of_range);
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, out, on(tensor::from<std::int32_t>({-1}, {1}), 0))),
              errc::out_of_range);
    tensor wrong = tensor::full({4, 3}, -1, dtype::float32, dev(1));
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, wrong, on(tensor::from<std::int64_t>({1}, {1}), 0))),
              errc::shape_mismatch);
    EXPECT_EQ(out.to_vector(), std::vector<double>(15, -1.0));
    EXPECT_EQ(wrong.to_vector(), std::vector<double>(12, -1.0));
    // Device rows of the wrong shape or type are refused, and the value stays.
    EXPECT_EQ(code_of(kv.push(
                  1, row_sparse_tensor::from(on(tensor::from<std::int64_t>({0}, {1}), 0),
                                             on(tensor::ones({1, 3}, dtype::float16), 0), s53))),
              errc::dtype_mismatch);
    EXPECT_EQ(pulled(kv, 1, dtype::float32, 1), std::vector<double>(15, 1.0));
  }
}
