// Row-sparse values in a local store: merging rows of several devices, pushes that touch
// only some rows, row_sparse_pull forms, and errors found before anything is written.
#include <gtest/gtest.h>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::errc;
using kvactor::row_sparse_tensor;
using kvactor::tensor;
using kvactor::testing::all_equal;

namespace {
const kvactor::shape s53{5, 3};

row_sparse_tensor rows_of(std::vector<std::int64_t> ids, std::vector<float> vals) {
  const auto n = static_cast<std::int64_t>(ids.size());
  return row_sparse_tensor::from(tensor::from(ids, {n}), tensor::from(vals, {n, 3}), s53);
}
}  // namespace

TEST(RowSparse, DevicesMergeRowByRow) {
  auto kv = kvactor::create("local");
  kv.init(1, tensor::full(s53, 7)).get();
  // Two devices: rows {1, 3} and {3, 4}; row 3 is summed; without an updater the value
  // becomes the merged gradient, zero in rows nobody pushed.
  kv.push(1, {rows_of({1, 3}, {1, 1, 1, 2, 2, 2}), rows_of({3, 4}, {10, 10, 10, 5, 5, 5})}).get();
  tensor out = tensor::zeros(s53);
  kv.pull(1, out).get();
  EXPECT_EQ(out.to_vector(), (std::vector<double>{0, 0, 0, 1, 1, 1, 0, 0, 0, 12, 12, 12, 5, 5, 5}));
}

TEST(RowSparse, UpdaterSeesTheDensifiedGradientUnlessItIsLazy) {
  auto kv = kvactor::create("local");
  kv.init(1, tensor::full(s53, 1)).get();
  kv.set_updater([](const kvactor::key&, const tensor& g, tensor& w) {
    for (std::size_t i = 0; i < w.size(); ++i)
      w.set(i, w.at(i) + 10 * g.at(i));
  });
  kv.push(1, rows_of({2}, {1, 2, 3})).get();
  tensor out = tensor::zeros(s53);
  kv.pull(1, out).get();
  EXPECT_EQ(out.to_vector(), (std::vector<double>{1, 1, 1, 1, 1, 1, 11, 21, 31, 1, 1, 1, 1, 1, 1}));
}

TEST(RowSparse, PullFormsAndErrors) {
  auto kv = kvactor::create("local");
  tensor init = tensor::zeros(s53);
  for (std::size_t i = 0; i < init.size(); ++i)
    init.set(i, static_cast<double>(i));
  kv.init({1, 2}, {init, init}).get();
  // Several outputs with their own ids; several keys with one id tensor each.
  tensor a = tensor::zeros(s53), b = tensor::zeros(s53);
  kv.row_sparse_pull(
        1, {a, b}, {tensor::from<std::int64_t>({4}, {1}), tensor::from<std::int32_t>({0, 0}, {2})})
      .get();
  EXPECT_EQ(a.at(12), 12);
  EXPECT_EQ(a.at(0), 0);
  EXPECT_EQ(b.at(2), 2);
  EXPECT_EQ(b.at(12), 0);
  tensor c = tensor::zeros(s53), d = tensor::zeros(s53);
  kv.row_sparse_pull({1, 2}, {c, d}, tensor::from<std::int64_t>({1}, {1})).get();
  EXPECT_EQ(c.at(3), 3);
  EXPECT_EQ(d.at(5), 5);

  tensor untouched = tensor::full(s53, -1);
  auto expect = [&](kvactor::future<void> f, errc code, const std::string& mention) {
    const auto& st = f.get_status();
    EXPECT_EQ(st.code(), code) << st.to_string();
    EXPECT_NE(st.message().find(mention), std::string::npos) << st.to_string();
    EXPECT_TRUE(all_equal(untouched, -1));
  };
  expect(kv.row_sparse_pull(1, untouched, tensor::from<std::int64_t>({1, 5}, {2})),
         errc::out_of_range, "row id 5");
  expect(kv.row_sparse_pull(1, untouched, tensor::from<std::int64_t>({-1}, {1})),
         errc::out_of_range, "row id -1");
  expect(kv.row_sparse_pull(1, untouched, tensor::from<float>({1.5f}, {1})), errc::invalid_argument,
         "whole number");
  expect(kv.row_sparse_pull(
             1, {untouched, tensor::zeros(s53)},
             {tensor::from<std::int64_t>({1}, {1}), tensor::from<std::int64_t>({1}, {1}),
              tensor::from<std::int64_t>({1}, {1})}),
         errc::invalid_argument, "3 row id");
  expect(kv.row_sparse_pull(9, untouched, tensor::from<std::int64_t>({1}, {1})),
         errc::not_initialized, "9");
  // A push whose rows do not fit the key.
  auto bad = kv.push(1, row_sparse_tensor::from(tensor::from<std::int64_t>({0}, {1}),
                                                tensor::ones({1, 4}), {5, 4}));
  EXPECT_EQ(bad.get_status().code(), errc::shape_mismatch);
  // Building a bad row_sparse_tensor is refused where it is built.
  EXPECT_THROW(rows_of({3, 1}, {1, 1, 1, 1, 1, 1}), kvactor::error);  // not increasing
  EXPECT_THROW(rows_of({7}, {1, 1, 1}), kvactor::error);              // out of range
}

TEST(RowSparse, TensorConversions) {
  tensor d = tensor::zeros(s53);
  d.set(4, 2);
  d.set(13, -1);
  auto r = row_sparse_tensor::from_dense(d);
  EXPECT_EQ(r.num_rows(), 2u);
  EXPECT_EQ(r.indices().to_vector(), (std::vector<double>{1, 4}));
  EXPECT_EQ(r.to_dense().to_vector(), d.to_vector());
  auto m = row_sparse_tensor::from_rows({4, 1, 4}, tensor::ones({3, 3}), s53);
  EXPECT_EQ(m.indices().to_vector(), (std::vector<double>{1, 4}));
  EXPECT_EQ(m.data().to_vector(), (std::vector<double>{1, 1, 1, 2, 2, 2}));
}

// Built-in lazy updates: SGD with weight decay changes only the pushed rows (MXNet's
// lazy_update), while lazy_update=0 decays every row.
TEST(RowSparse, LazySgdTouchesOnlyPushedRows) {
  for (int lazy : {1, 0}) {
    auto kv = kvactor::create("local");
    kv.init(1, tensor::full(s53, 1)).get();
    kv
        .set_optimizer(kvactor::optimizer_config{
            "sgd", {{"learning_rate", 0.5}, {"wd", 0.1}, {"lazy_update", double(lazy)}}})
        .get();
    kv.push(1, rows_of({2}, {1, 1, 1})).get();
    tensor out = tensor::zeros(s53);
    kv.pull(1, out).get();
    const float pushed = (1.0f - 0.5f * 0.1f) * 1.0f - 0.5f * 1.0f;  // (1 - lr*wd)*w - lr*g
    const float decayed = (1.0f - 0.5f * 0.1f) * 1.0f;
    EXPECT_FLOAT_EQ(static_cast<float>(out.at(2 * 3)), pushed) << "lazy " << lazy;
    EXPECT_FLOAT_EQ(static_cast<float>(out.at(0)), lazy ? 1.0f : decayed) << "lazy " << lazy;
  }
}
