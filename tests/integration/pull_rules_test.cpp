// MXNet's rules for what a pull writes (issue 11 items 4 and 5), on the local and device
// stores: row ids of any shape are read flat, float ids must be whole and in range, and a
// pulled value is converted into an output of another element type (MXNet's CopyFromTo
// casts), for pull, row_sparse_pull, pushpull and broadcast alike. Errors leave every output
// as it was. Run on CPU and on two emulated devices (tests/integration/CMakeLists.txt), where
// the device store keeps its keys on the devices and device outputs are converted there.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::device;
using kvactor::dtype;
using kvactor::errc;
using kvactor::tensor;
using kvactor::testing::all_equal;

namespace {

const kvactor::shape s43{4, 3};

// Element i is i / 2: exact in float16, bfloat16 and float32, and not whole for odd i.
tensor halves(const kvactor::shape& s, dtype t) {
  tensor x = tensor::zeros(s, t);
  for (std::size_t i = 0; i < x.size(); ++i)
    x.set(i, static_cast<double>(i) / 2);
  return x;
}

// What a row_sparse_pull of `rows` from halves(s43) leaves: those rows, zero elsewhere.
std::vector<double> rows_of_halves(std::vector<int> rows) {
  std::vector<double> v(12, 0.0);
  for (int r : rows)
    for (int c = 0; c < 3; ++c)
      v[static_cast<std::size_t>(r * 3 + c)] = (r * 3 + c) / 2.0;
  return v;
}

::testing::AssertionResult fails_with(kvactor::future<void> f, errc code, const std::string& word) {
  const auto& st = f.get_status();
  if (st.code() == code && st.message().find(word) != std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << kvactor::to_string(code) << " naming \""
                                       << word << "\", got " << st.to_string();
}

class PullRules : public ::testing::TestWithParam<const char*> {
 protected:
  kvactor::kvstore kv = kvactor::create(GetParam());
};

}  // namespace

// MXNet: a (2, 2) float32 id array {0, 2, 2, 0} pulls rows {0, 2}.
TEST_P(PullRules, RowIdsOfAnyShapeAreReadFlat) {
  kv.init(1, halves(s43, dtype::float32)).get();
  tensor out = tensor::full(s43, -1);
  kv.row_sparse_pull(1, out, tensor::from<float>({0, 2, 2, 0}, {2, 2})).get();
  EXPECT_EQ(out.to_vector(), rows_of_halves({0, 2}));
  tensor ids3 = tensor::from<std::int64_t>({3, 1, 3, 3}, {2, 1, 2});
  kv.row_sparse_pull(1, out, ids3).get();
  EXPECT_EQ(out.to_vector(), rows_of_halves({1, 3}));
  // One id tensor of shape (1, 1) for two outputs; float16 ids too.
  tensor a = tensor::full(s43, -1), b = tensor::full(s43, -1);
  kv.row_sparse_pull(1, {a, b}, tensor::from<std::int32_t>({2}, {1, 1})).get();
  EXPECT_EQ(a.to_vector(), rows_of_halves({2}));
  EXPECT_EQ(b.to_vector(), rows_of_halves({2}));
  kv.row_sparse_pull(1, a, tensor::full({2, 1}, 3, dtype::float16)).get();
  EXPECT_EQ(a.to_vector(), rows_of_halves({3}));
}

TEST_P(PullRules, BadFloatIdsAreRefusedBeforeAnythingIsWritten) {
  kv.init({1, 2}, {halves(s43, dtype::float32), halves(s43, dtype::float32)}).get();
  tensor a = tensor::full(s43, -1), b = tensor::full(s43, -1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(fails_with(kv.row_sparse_pull(1, a, tensor::from<float>({0, 1.5f}, {1, 2})),
                         errc::invalid_argument, "whole number"));
  EXPECT_TRUE(fails_with(kv.row_sparse_pull(1, a, tensor::from<float>({nan}, {1})),
                         errc::invalid_argument, "whole number"));
  EXPECT_TRUE(fails_with(kv.row_sparse_pull(1, a, tensor::from<float>({-1}, {1, 1})),
                         errc::out_of_range, "row id -1"));
  EXPECT_TRUE(fails_with(kv.row_sparse_pull(1, a, tensor::from<double>({4}, {1})),
                         errc::out_of_range, "row id 4"));
  EXPECT_TRUE(fails_with(kv.row_sparse_pull(1, a, tensor::from<double>({1e30}, {1})),
                         errc::out_of_range, "out of range"));
  // A bad id for the second key: the first key's output is not written either.
  EXPECT_TRUE(fails_with(
      kv.row_sparse_pull({1, 2}, {a, b},
                         {tensor::from<float>({1}, {1}), tensor::from<float>({0.25f}, {1})}),
      errc::invalid_argument, "0.25"));
  EXPECT_TRUE(all_equal(a, -1));
  EXPECT_TRUE(all_equal(b, -1));
}

// MXNet: row_sparse_pull of a float16 key into a float32 output casts.
TEST_P(PullRules, RowSparsePullConvertsIntoAnOutputOfAnotherType) {
  for (dtype key_type : {dtype::float16, dtype::bfloat16}) {
    const std::string k = std::string{"w_"} + kvactor::to_string(key_type);
    kv.init(k, halves(s43, key_type)).get();
    tensor out = tensor::full(s43, -1, dtype::float32);
    kv.row_sparse_pull(k, out, tensor::from<std::int64_t>({2, 0}, {2})).get();
    EXPECT_EQ(out.dtype(), dtype::float32);
    EXPECT_EQ(out.to_vector(), rows_of_halves({0, 2})) << k;
  }
  // float32 into float16 and float64; one id tensor for two outputs of different types.
  kv.init("f32", halves(s43, dtype::float32)).get();
  tensor h = tensor::full(s43, -1, dtype::float16), d = tensor::full(s43, -1, dtype::float64);
  kv.row_sparse_pull("f32", {h, d}, tensor::from<float>({1, 3}, {2, 1})).get();
  EXPECT_EQ(h.to_vector(), rows_of_halves({1, 3}));
  EXPECT_EQ(d.to_vector(), rows_of_halves({1, 3}));
}

// The same rule for every pull: dense pull, pushpull and broadcast outputs are converted too
// (integers truncate toward zero, as kernels::cast converts).
TEST_P(PullRules, EveryPullConvertsAndKeepsItsOrder) {
  kv.init(1, halves(s43, dtype::float16)).get();
  tensor f32 = tensor::full(s43, -1), i32 = tensor::full(s43, -1, dtype::int32);
  kv.pull(1, {f32, i32}).get();
  EXPECT_EQ(f32.to_vector(), halves(s43, dtype::float32).to_vector());
  for (std::size_t i = 0; i < i32.size(); ++i)
    EXPECT_EQ(i32.at(i), std::trunc(static_cast<double>(i) / 2)) << i;
  // pushpull: the pushed float16 value, read back as float32; broadcast likewise.
  kv.pushpull(1, tensor::full(s43, 2.5, dtype::float16), f32).get();
  EXPECT_TRUE(all_equal(f32, 2.5));
  tensor b = tensor::full(s43, -1, dtype::float64);
  kv.broadcast(2, tensor::full(s43, 0.75, dtype::bfloat16), b).get();
  EXPECT_TRUE(all_equal(b, 0.75));
  // A list of keys where only one output needs converting; futures not waited for: the
  // outputs' checked reads, and wait_all(), still see the results in issue order.
  tensor same = tensor::full(s43, -1, dtype::float16), other = tensor::full(s43, -1);
  kv.push(1, tensor::full(s43, 4, dtype::float16));
  kv.pull({1, 2}, {same, other});
  kv.push(1, tensor::full(s43, 8, dtype::float16));
  tensor later = tensor::full(s43, -1);
  kv.pull(1, later);
  EXPECT_TRUE(all_equal(same, 4));
  EXPECT_TRUE(all_equal(other, 0.75));
  kv.wait_all();
  EXPECT_EQ(kv.outstanding(), 0u);
  EXPECT_EQ(static_cast<const float*>(later.data_unchecked())[11], 8.0f);
}

TEST_P(PullRules, AConvertingPullThatFailsWritesNothing) {
  kv.init({1, 2}, {halves(s43, dtype::float16), halves(s43, dtype::float32)}).get();
  tensor a = tensor::full(s43, -1), wrong = tensor::full({3, 4}, -1, dtype::float64);
  EXPECT_TRUE(fails_with(kv.pull({1, 2}, {a, wrong}), errc::shape_mismatch, "(3, 4)"));
  EXPECT_TRUE(fails_with(kv.pull({1, 9}, {a, tensor::zeros(s43)}), errc::not_initialized, "9"));
  EXPECT_TRUE(fails_with(kv.row_sparse_pull(1, a, tensor::from<float>({7}, {1})),
                         errc::out_of_range, "row id 7"));
  EXPECT_TRUE(all_equal(a, -1));
  EXPECT_TRUE(all_equal(wrong, -1));
  // The caller's outputs may not overlap, though the staging tensors would not.
  tensor shared = tensor::full(s43, -1, dtype::float64);
  EXPECT_TRUE(fails_with(kv.pull({1, 2}, {shared, shared}), errc::invalid_argument, "overlaps"));
  EXPECT_TRUE(all_equal(shared, -1));
  // A push keeps its rule: values have the key's type.
  EXPECT_TRUE(fails_with(kv.push(1, tensor::ones(s43)), errc::dtype_mismatch, "float16"));
  kv.wait_all();
}

// Outputs on devices (two emulated devices in CI): converted on their own device.
TEST_P(PullRules, DeviceOutputsAreConvertedOnTheirDevice) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d1 = device::cuda(1 % kvactor::cuda_device_count());
  kv.init(1, halves(s43, dtype::float16)).get();
  std::vector<tensor> outs = {tensor::full(s43, -1, dtype::float32, device::cuda(0)),
                              tensor::full(s43, -1, dtype::float64, d1),
                              tensor::full(s43, -1, dtype::float16, d1)};
  kv.pull(1, outs).get();
  for (const auto& o : outs) {
    EXPECT_FALSE(o.device().is_cpu());
    EXPECT_EQ(o.to_vector(), halves(s43, dtype::float32).to_vector()) << o.describe();
  }
  // Row-sparse pulls into a host output and into device outputs of another type, with ids
  // on the host and on a device.
  tensor host = tensor::full(s43, -1, dtype::float32);
  kv.row_sparse_pull(1, host, tensor::from<float>({3, 1, 3, 1}, {2, 2})).get();
  EXPECT_EQ(host.to_vector(), rows_of_halves({1, 3}));
  std::vector<tensor> dev_outs = {tensor::full(s43, -1, dtype::float32, device::cuda(0)),
                                  tensor::full(s43, -1, dtype::float64, d1)};
  kv.row_sparse_pull(1, dev_outs, tensor::from<std::int64_t>({3, 1}, {2}).copy_to(d1)).get();
  for (const auto& o : dev_outs) {
    EXPECT_FALSE(o.device().is_cpu());
    EXPECT_EQ(o.to_vector(), rows_of_halves({1, 3})) << o.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, PullRules, ::testing::Values("local", "device"),
                         [](const auto& info) { return std::string{info.param}; });
