// row_sparse_pull into row-sparse outputs, and pull's ignore_sparse rule for them (issue 11,
// item 6), in the local and device stores: each output receives exactly its requested rows
// (sorted, unique) and their values, on the output's device, of its element type.
//
// Every test runs everywhere. With CUDA devices (two emulated ones in CI, KVACTOR_EMULATE_CUDA=2;
// real GPUs too) the keys' values and the outputs are put on them; without devices they stay
// on the host and the same expectations hold.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "code_of.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/custom_store.hpp"
#include "kvactor/kvstore.hpp"
#include "kvactor/row_sparse_output.hpp"

using kvactor::device;
using kvactor::dtype;
using kvactor::errc;
using kvactor::row_sparse_output;
using kvactor::row_sparse_tensor;
using kvactor::shape;
using kvactor::tensor;
using kvactor::testing::code_of;

namespace {

const shape s53{5, 3};

// Logical device i: a CUDA device when there are any, else the host.
device dev(int i) {
  const int n = kvactor::cuda_device_count();
  return n > 0 ? device::cuda(i % n) : device::cpu();
}

// Row r, column c of the key holds r*10 + c.
tensor table(dtype t = dtype::float32) {
  tensor v = tensor::zeros(s53, t);
  for (std::size_t i = 0; i < v.size(); ++i)
    v.set(i, static_cast<double>((i / 3) * 10 + i % 3));
  return v;
}

std::vector<double> rows_of(const std::vector<std::int64_t>& ids) {
  std::vector<double> out;
  for (auto r : ids)
    for (int c = 0; c < 3; ++c)
      out.push_back(static_cast<double>(r * 10 + c));
  return out;
}

std::vector<std::int64_t> indices_of(const row_sparse_tensor& r) {
  std::vector<std::int64_t> out;
  for (double v : r.host_indices().to_vector())
    out.push_back(static_cast<std::int64_t>(v));
  return out;
}

tensor ids(std::vector<std::int64_t> v) {
  return tensor::from(v, {static_cast<std::int64_t>(v.size())});
}

const char* const stores[] = {"local", "device"};

}  // namespace

TEST(RowSparseOutput, UnsortedRepeatedIdsGiveSortedUniqueRows) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init(3, table().copy_to(dev(0))).get();
    row_sparse_output out;  // host, the key's type
    kv.row_sparse_pull(3, out, ids({3, 1, 3, 0})).get();
    const row_sparse_tensor r = out.value();
    ASSERT_TRUE(r.defined());
    EXPECT_EQ(r.shape(), s53);
    EXPECT_EQ(r.dtype(), dtype::float32);
    EXPECT_TRUE(r.device().is_cpu());
    EXPECT_EQ(indices_of(r), (std::vector<std::int64_t>{0, 1, 3}));
    EXPECT_EQ(r.data().shape(), (shape{3, 3}));
    EXPECT_EQ(r.data().to_vector(), rows_of({0, 1, 3}));
  }
}

TEST(RowSparseOutput, DeviceOutputsAndDeviceIdsPerOutput) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init("w", table()).get();
    row_sparse_output a{dev(0)}, b{dev(1)};
    // One id tensor per output, the second on a device and 2-D (read flat).
    tensor b_ids = tensor::from(std::vector<float>{4, 2, 2, 4}, {2, 2}).copy_to(dev(1));
    kv.row_sparse_pull("w", {a, b}, {ids({1}), b_ids}).get();
    const row_sparse_tensor ra = a.value(), rb = b.value();
    EXPECT_EQ(ra.device(), dev(0));
    EXPECT_EQ(ra.indices().device(), dev(0));
    EXPECT_EQ(indices_of(ra), (std::vector<std::int64_t>{1}));
    EXPECT_EQ(ra.data().copy_to(device::cpu()).to_vector(), rows_of({1}));
    EXPECT_EQ(rb.device(), dev(1));
    EXPECT_EQ(indices_of(rb), (std::vector<std::int64_t>{2, 4}));
    EXPECT_EQ(rb.data().copy_to(device::cpu()).to_vector(), rows_of({2, 4}));
    // The pulled rows are the value they stand for.
    std::vector<double> dense(15, 0.0);
    for (int c = 0; c < 3; ++c)
      dense[3 + c] = 10 + c;
    EXPECT_EQ(ra.to_dense().copy_to(device::cpu()).to_vector(), dense);
  }
}

TEST(RowSparseOutput, ListOfKeysOneIdTensorForAll) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init({1, 2}, {table(), tensor::full(s53, 7.0)}).get();
    row_sparse_output o1, o2{dev(1)};
    kv.row_sparse_pull({1, 2}, {o1, o2}, ids({4, 0})).get();
    EXPECT_EQ(indices_of(o1.value()), (std::vector<std::int64_t>{0, 4}));
    EXPECT_EQ(o1.value().data().to_vector(), rows_of({0, 4}));
    EXPECT_EQ(indices_of(o2.value()), (std::vector<std::int64_t>{0, 4}));
    EXPECT_EQ(o2.value().data().copy_to(device::cpu()).to_vector(), std::vector<double>(6, 7.0));
  }
}

TEST(RowSparseOutput, Float16KeyAndConvertingOutput) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init(5, table(dtype::float16).copy_to(dev(1))).get();
    row_sparse_output same{dev(0)}, wide{dev(1), dtype::float32};
    kv.row_sparse_pull(5, {same, wide}, ids({2, 0})).get();
    EXPECT_EQ(same.value().dtype(), dtype::float16);
    EXPECT_EQ(same.value().data().copy_to(device::cpu()).to_vector(), rows_of({0, 2}));
    EXPECT_EQ(wide.value().dtype(), dtype::float32);
    EXPECT_EQ(wide.value().device(), dev(1));
    EXPECT_EQ(indices_of(wide.value()), (std::vector<std::int64_t>{0, 2}));
    EXPECT_EQ(wide.value().data().copy_to(device::cpu()).to_vector(), rows_of({0, 2}));
  }
}

TEST(RowSparseOutput, PullsAfterPushSeeTheUpdateAndEmptyIds) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init(1, tensor::zeros(s53)).get();
    kv.push(1, table().copy_to(dev(0)));
    row_sparse_output out, none;
    kv.row_sparse_pull(1, out, ids({4})).wait();  // ordered after the push
    EXPECT_EQ(out.value().data().to_vector(), rows_of({4}));
    kv.row_sparse_pull(1, none, tensor::zeros({0}, dtype::int64)).get();
    EXPECT_EQ(none.value().num_rows(), 0u);
    EXPECT_EQ(none.value().shape(), s53);
    // The output holds the rows of the pull issued last, whichever completes last (a pull of
    // no rows completes at once).
    kv.row_sparse_pull(1, out, ids({2}));
    kv.row_sparse_pull(1, out, tensor::zeros({0}, dtype::int64));
    EXPECT_EQ(out.value().num_rows(), 0u);
    kv.wait_all();
    EXPECT_EQ(out.value().num_rows(), 0u);
  }
}

TEST(RowSparseOutput, ErrorsLeaveTheOutputAsItWas) {
  for (const char* type : stores) {
    SCOPED_TRACE(type);
    auto kv = kvactor::create(type);
    kv.init(1, table()).get();
    row_sparse_output out{dev(0)}, fresh;
    kv.row_sparse_pull(1, out, ids({2})).get();
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, out, ids({1, 5}))), errc::out_of_range);
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, out, ids({-1}))), errc::out_of_range);
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, out, tensor::from(std::vector<float>{0.5f}, {1}))),
              errc::invalid_argument);
    EXPECT_EQ(code_of(kv.row_sparse_pull(9, out, ids({0}))), errc::not_initialized);
    EXPECT_EQ(code_of(kv.row_sparse_pull(1, {out, out}, ids({0}))), errc::invalid_argument);
    EXPECT_EQ(code_of(kv.row_sparse_pull({1, 1}, {out, fresh}, {ids({0}), ids({7})})),
              errc::out_of_range);
    EXPECT_EQ(indices_of(out.value()), (std::vector<std::int64_t>{2}));
    EXPECT_EQ(out.value().data().copy_to(device::cpu()).to_vector(), rows_of({2}));
    EXPECT_FALSE(fresh.value().defined());
    kv.wait_all();  // every error above was observed
  }
}

TEST(RowSparseOutput, PullIgnoresOrRefusesRowSparseOutputs) {
  auto kv = kvactor::create("local");
  kv.init(1, table()).get();
  row_sparse_output out;
  kv.row_sparse_pull(1, out, ids({3})).get();
  kv.pull(1, out).get();  // ignore_sparse: skipped, as MXNet skips it
  EXPECT_EQ(indices_of(out.value()), (std::vector<std::int64_t>{3}));
  EXPECT_EQ(code_of(kv.pull(1, out, 0, /*ignore_sparse=*/false)), errc::invalid_argument);
  EXPECT_EQ(code_of(kv.pull({1, 2}, out)), errc::invalid_argument);  // form still checked
  EXPECT_EQ(indices_of(out.value()), (std::vector<std::int64_t>{3}));
  // Dense outputs are pulled whatever ignore_sparse says.
  tensor dense = tensor::zeros(s53);
  kv.pull(1, dense, 0, false).get();
  EXPECT_EQ(dense.to_vector(), table().to_vector());
}

TEST(RowSparseOutput, UserRegisteredStoresRefuseThem) {
  struct bare : kvactor::custom_store {};
  kvactor::register_store("row_sparse_output_test_bare",
                          [](const kvactor::options&) { return std::make_unique<bare>(); });
  auto kv = kvactor::create("row_sparse_output_test_bare");
  row_sparse_output out;
  EXPECT_EQ(code_of(kv.row_sparse_pull(1, out, ids({0}))), errc::unsupported);
  EXPECT_FALSE(out.value().defined());
}
