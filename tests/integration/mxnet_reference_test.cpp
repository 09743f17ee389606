// Every example of MXNet's KVStore API reference (mxnet.kvstore) that applies to a local store,
// with the same keys, values and expected output. Each test sets up the state the documented
// snippet assumes (the docstrings run in one session).
#include <gtest/gtest.h>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::tensor;
using kvactor::testing::all_equal;
using kvactor::testing::all_near;
using kvactor::testing::filled;

namespace {
const kvactor::shape shape23{2, 3};
std::vector<tensor> ones_on(int devices) {
  std::vector<tensor> v;
  for (int i = 0; i < devices; ++i)
    v.push_back(tensor::ones(shape23));
  return v;
}
}  // namespace

// broadcast: kv.broadcast('3', mx.nd.ones(shape)*2, out=a) -> a is all 2s.
TEST(MxnetReference, Broadcast) {
  auto kv = kvactor::create("local");
  tensor a = tensor::zeros(shape23);
  kv.broadcast("3", filled(shape23, 2), a).get();
  EXPECT_TRUE(all_equal(a, 2));
}

// init: a single pair then pull gives 2s; a list of keys initialises each.
TEST(MxnetReference, Init) {
  auto kv = kvactor::create("local");
  kv.init("3", filled(shape23, 2)).get();
  tensor a = tensor::zeros(shape23);
  kv.pull("3", a).get();
  EXPECT_TRUE(all_equal(a, 2));

  kv.init({"5", "7", "9"}, {tensor::ones(shape23), tensor::ones(shape23), tensor::ones(shape23)})
      .get();
  for (const char* k : {"5", "7", "9"}) {
    tensor b = tensor::zeros(shape23);
    kv.pull(k, b).get();
    EXPECT_TRUE(all_equal(b, 1)) << k;
  }
}

// push: a single pair replaces (8s); four device values are summed (4s); a list of keys;
// a list of lists over four devices (b[1][1] is 4s after the pull).
TEST(MxnetReference, Push) {
  auto kv = kvactor::create("local");
  kv.init("3", filled(shape23, 2));
  tensor a = tensor::zeros(shape23);

  kv.push("3", filled(shape23, 8));
  kv.pull("3", a).get();
  EXPECT_TRUE(all_equal(a, 8));

  kv.push("3", ones_on(4));
  kv.pull("3", a).get();
  EXPECT_TRUE(all_equal(a, 4));

  kv.init({"4", "5", "6"},
          {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)});
  kv.push({"4", "5", "6"}, ones_on(3));
  std::vector<tensor> b = {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)};
  kv.pull({"4", "5", "6"}, b).get();
  EXPECT_TRUE(all_equal(b[1], 1));

  kv.init({"7", "8", "9"},
          {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)});
  std::vector<std::vector<tensor>> bb = {ones_on(4), ones_on(4), ones_on(4)};
  kv.push({"7", "8", "9"}, bb);
  kv.pull({"7", "8", "9"}, bb).get();
  EXPECT_TRUE(all_equal(bb[1][1], 4));
}

// pull: into one array, into four device arrays, a list of keys, a list of lists.
TEST(MxnetReference, Pull) {
  auto kv = kvactor::create("local");
  kv.init({"3", "5", "7", "9", "6", "8", "10"},
          {filled(shape23, 2), filled(shape23, 2), filled(shape23, 2), filled(shape23, 2),
           filled(shape23, 2), filled(shape23, 2), filled(shape23, 2)});
  tensor a = tensor::zeros(shape23);
  kv.pull("3", a).get();
  EXPECT_TRUE(all_equal(a, 2));

  auto b = ones_on(4);
  kv.pull("3", b).get();
  EXPECT_TRUE(all_equal(b[1], 2));

  std::vector<tensor> c = {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)};
  kv.pull({"5", "7", "9"}, c).get();
  EXPECT_TRUE(all_equal(c[1], 2));

  std::vector<std::vector<tensor>> d = {ones_on(4), ones_on(4), ones_on(4)};
  kv.pull({"6", "8", "10"}, d).get();
  EXPECT_TRUE(all_equal(d[1][1], 2));
}

// pushpull: 8s; four devices summed into one output (4s); a list of keys (1s); a list of
// lists pushed and pulled in place (b[1][1] is 4s).
TEST(MxnetReference, PushPull) {
  auto kv = kvactor::create("local");
  kv.init("3", filled(shape23, 2));
  tensor a = tensor::zeros(shape23);
  kv.pushpull("3", filled(shape23, 8), a).get();
  EXPECT_TRUE(all_equal(a, 8));

  kv.pushpull("3", ones_on(4), a).get();
  EXPECT_TRUE(all_equal(a, 4));

  kv.init({"4", "5", "6"},
          {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)});
  std::vector<tensor> b = {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)};
  kv.pushpull({"4", "5", "6"}, ones_on(3), b).get();
  EXPECT_TRUE(all_equal(b[1], 1));

  kv.init({"7", "8", "9"},
          {tensor::zeros(shape23), tensor::zeros(shape23), tensor::zeros(shape23)});
  std::vector<std::vector<tensor>> bb = {ones_on(4), ones_on(4), ones_on(4)};
  kv.pushpull({"7", "8", "9"}, bb).get();
  EXPECT_TRUE(all_equal(bb[1][1], 4));
}

// set_optimizer: default SGD (learning rate 0.01) on a zero weight, push ones -> -0.01.
TEST(MxnetReference, SetOptimizer) {
  auto kv = kvactor::create();
  const kvactor::shape s{2, 2};
  tensor weight = tensor::zeros(s);
  kv.init(3, weight);
  kv.set_optimizer(kvactor::sgd_config()).get();
  kv.push(3, tensor::ones(s));
  kv.pull(3, weight).get();
  EXPECT_TRUE(all_near(weight, -0.01, 1e-7));
}

// _set_updater: stored += input * 2; a pull shows 4s, and after pushing ones, 6s.
TEST(MxnetReference, SetUpdater) {
  auto kv = kvactor::create("local");
  kv.init("3", filled(shape23, 2));
  kv.push("3", ones_on(4));  // as in the push example: '3' now holds 4s
  std::vector<std::string> seen;
  kv.set_updater([&](const kvactor::key& k, const tensor& input, tensor& stored) {
    seen.push_back(k.as_string());  // "update on key: 3"
    auto* s = stored.data<float>();
    const auto* in = input.data<float>();
    for (std::size_t i = 0; i < stored.size(); ++i)
      s[i] += in[i] * 2;
  });
  tensor a = tensor::zeros(shape23);
  kv.pull("3", a).get();
  EXPECT_TRUE(all_equal(a, 4));
  kv.push("3", tensor::ones(shape23));
  kv.pull("3", a).get();
  EXPECT_TRUE(all_equal(a, 6));
  EXPECT_EQ(seen, std::vector<std::string>{"3"});
}

// type, rank, num_workers, is_capable.
TEST(MxnetReference, Properties) {
  auto kv = kvactor::create("local");
  EXPECT_EQ(kv.type(), "local");
  EXPECT_EQ(kv.rank(), 0);
  EXPECT_EQ(kv.num_workers(), 1);
  EXPECT_TRUE(kv.is_capable("optimizer"));
  EXPECT_TRUE(kv.is_capable("OPTIMIZER"));
  try {
    kv.is_capable("teleportation");
    FAIL() << "unknown capability accepted";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), kvactor::errc::invalid_argument);
    EXPECT_NE(std::string{e.what()}.find("teleportation"), std::string::npos);
  }
  kv.barrier().get();
}

// init with a row_sparse value; row_sparse_pull with ids [0, 2], duplicates [2, 2], unsorted
// [1, 0]: exactly those rows, zeros elsewhere.
TEST(MxnetReference, RowSparsePull) {
  auto kv = kvactor::create("local");
  const kvactor::shape s33{3, 3};
  kv.init("3", kvactor::row_sparse_tensor::from_dense(tensor::ones(s33))).get();
  tensor a = tensor::zeros(s33);
  kv.row_sparse_pull("3", a, tensor::from<std::int64_t>({0, 2}, {2})).get();
  EXPECT_EQ(a.to_vector(), (std::vector<double>{1, 1, 1, 0, 0, 0, 1, 1, 1}));
  kv.row_sparse_pull("3", a, tensor::from<std::int64_t>({2, 2}, {2})).get();
  EXPECT_EQ(a.to_vector(), (std::vector<double>{0, 0, 0, 0, 0, 0, 1, 1, 1}));
  // MXNet passes ids as float arrays too (mx.nd.array's default dtype).
  kv.row_sparse_pull("3", a, tensor::from<float>({1, 0}, {2})).get();
  EXPECT_EQ(a.to_vector(), (std::vector<double>{1, 1, 1, 1, 1, 1, 0, 0, 0}));
}

// init '4' with ones as row_sparse; push ones (row_sparse) to '10' initialised with row_sparse
// zeros; row_sparse_pull rows [0, 1] of each.
TEST(MxnetReference, RowSparseInitAndPush) {
  auto kv = kvactor::create("local");
  const kvactor::shape s23{2, 3};
  kv.init("4", kvactor::row_sparse_tensor::from_dense(tensor::ones(s23))).get();
  tensor b = tensor::full(s23, 9);
  kv.row_sparse_pull("4", b, tensor::from<std::int64_t>({0, 1}, {2})).get();
  EXPECT_TRUE(all_equal(b, 1));
  kv.init("10", kvactor::row_sparse_tensor::zeros(s23)).get();
  kv.push("10", kvactor::row_sparse_tensor::from_dense(tensor::ones(s23))).get();
  tensor c = tensor::zeros(s23);
  kv.row_sparse_pull("10", c, tensor::from<std::int64_t>({0, 1}, {2})).get();
  EXPECT_TRUE(all_equal(c, 1));
}
