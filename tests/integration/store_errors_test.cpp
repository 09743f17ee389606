// Bad input, case by case: each gets its typed error through the future, the message names
// the key and the offending value, and the store is exactly as it was.
#include <gtest/gtest.h>

#include "kvactor/cuda.hpp"
#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::errc;
using kvactor::tensor;
using kvactor::testing::all_equal;
using kvactor::testing::filled;

namespace {

const kvactor::shape s23{2, 3};

// The future failed with `code` and its message mentions every string in `mentions`.
::testing::AssertionResult fails_with(const kvactor::future<void>& f, errc code,
                                      std::vector<std::string> mentions) {
  const auto& st = f.get_status();
  if (st.code() != code)
    return ::testing::AssertionFailure()
           << "expected " << kvactor::to_string(code) << ", got " << st.to_string();
  for (const auto& m : mentions)
    if (st.message().find(m) == std::string::npos)
      return ::testing::AssertionFailure() << "message \"" << st.message() << "\" lacks " << m;
  try {
    f.get();
    return ::testing::AssertionFailure() << "get() did not throw";
  } catch (const kvactor::error& e) {
    if (e.code() != code) return ::testing::AssertionFailure() << "get() threw " << e.what();
  }
  return ::testing::AssertionSuccess();
}

class StoreErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    kv = kvactor::create("local");
    kv.init({1, 2}, {filled(s23, 10), filled(s23, 20)}).get();
  }
  // Keys 1 and 2 still hold 10 and 20.
  void expect_untouched() {
    tensor a = tensor::zeros(s23), b = tensor::zeros(s23);
    kv.pull({1, 2}, {a, b}).get();
    EXPECT_TRUE(all_equal(a, 10));
    EXPECT_TRUE(all_equal(b, 20));
  }
  kvactor::kvstore kv;
};

}  // namespace

TEST_F(StoreErrors, PushOfUninitializedKey) {
  EXPECT_TRUE(fails_with(kv.push(7, filled(s23, 1)), errc::not_initialized, {"7", "push"}));
  // A call on several keys fails whole: key 1 is not changed either.
  EXPECT_TRUE(
      fails_with(kv.push({1, 7}, {filled(s23, 1), filled(s23, 1)}), errc::not_initialized, {"7"}));
  expect_untouched();
}

TEST_F(StoreErrors, PullOfUninitializedKey) {
  tensor out = filled(s23, -1);
  EXPECT_TRUE(fails_with(kv.pull(7, out), errc::not_initialized, {"7", "pull"}));
  EXPECT_TRUE(all_equal(out, -1));
  EXPECT_TRUE(fails_with(kv.pushpull(8, filled(s23, 1), out), errc::not_initialized, {"8"}));
  expect_untouched();
}

TEST_F(StoreErrors, SecondInit) {
  EXPECT_TRUE(fails_with(kv.init(1, filled(s23, 5)), errc::already_initialized, {"1"}));
  // The same key twice in one call, with a fresh key: neither is initialised.
  EXPECT_TRUE(fails_with(kv.init({3, 3}, {filled(s23, 5), filled(s23, 6)}),
                         errc::already_initialized, {"3"}));
  EXPECT_TRUE(fails_with(kv.pull(3, tensor::zeros(s23)), errc::not_initialized, {"3"}));
  // A fresh key next to an initialised one: the fresh one is not initialised.
  EXPECT_TRUE(fails_with(kv.init({4, 2}, {filled(s23, 5), filled(s23, 6)}),
                         errc::already_initialized, {"2"}));
  EXPECT_TRUE(fails_with(kv.pull(4, tensor::zeros(s23)), errc::not_initialized, {"4"}));
  EXPECT_TRUE(fails_with(kv.broadcast(1, filled(s23, 5), tensor::zeros(s23)),
                         errc::already_initialized, {"1"}));
  expect_untouched();
}

TEST_F(StoreErrors, ShapeMismatch) {
  EXPECT_TRUE(
      fails_with(kv.push(1, filled({3, 2}, 1)), errc::shape_mismatch, {"1", "(3, 2)", "(2, 3)"}));
  EXPECT_TRUE(
      fails_with(kv.push(1, {filled(s23, 1), filled({6}, 1)}), errc::shape_mismatch, {"(6,)"}));
  tensor wrong = filled({2, 2}, -1);
  EXPECT_TRUE(fails_with(kv.pull(2, wrong), errc::shape_mismatch, {"2", "(2, 2)"}));
  EXPECT_TRUE(all_equal(wrong, -1));
  EXPECT_TRUE(fails_with(kv.pushpull(1, filled(s23, 1), wrong), errc::shape_mismatch, {"1"}));
  EXPECT_TRUE(fails_with(kv.broadcast(5, filled(s23, 1), wrong), errc::shape_mismatch, {"5"}));
  EXPECT_TRUE(fails_with(kv.pull(5, tensor::zeros(s23)), errc::not_initialized, {"5"}));
  expect_untouched();
}

TEST_F(StoreErrors, DtypeMismatch) {
  EXPECT_TRUE(fails_with(kv.push(1, filled(s23, 1, kvactor::dtype::float64)), errc::dtype_mismatch,
                         {"1", "float64", "float32"}));
  // A pull converts into an output of another type, as MXNet's does (pull_rules_test.cpp);
  // one that fails for another reason leaves it as it was.
  tensor out = filled({3, 2}, -1, kvactor::dtype::int32);
  EXPECT_TRUE(fails_with(kv.pull(2, out), errc::shape_mismatch, {"2", "(3, 2)"}));
  EXPECT_TRUE(all_equal(out, -1));
  expect_untouched();
}

TEST_F(StoreErrors, MixedKeyTypes) {
  // The store uses int keys: a string key is refused, alone or in a list.
  EXPECT_TRUE(fails_with(kv.init("x", filled(s23, 1)), errc::mixed_key_types, {"\"x\""}));
  EXPECT_TRUE(
      fails_with(kv.push({kvactor::key{1}, kvactor::key{"1"}}, {filled(s23, 1), filled(s23, 1)}),
                 errc::mixed_key_types, {"\"1\""}));
  expect_untouched();
  // A fresh store fixes its kind on first use; a call mixing kinds is refused whole.
  auto fresh = kvactor::create("local");
  EXPECT_TRUE(
      fails_with(fresh.init({kvactor::key{"a"}, kvactor::key{2}}, {filled(s23, 1), filled(s23, 1)}),
                 errc::mixed_key_types, {"\"a\"", "2"}));
  fresh.init("a", filled(s23, 3)).get();
  EXPECT_TRUE(fails_with(fresh.pull(2, tensor::zeros(s23)), errc::mixed_key_types, {"2"}));
  // Into row-sparse outputs too: the kind is checked before the key is looked up.
  kvactor::row_sparse_output rows;
  EXPECT_TRUE(fails_with(fresh.row_sparse_pull(2, rows, tensor::from<std::int64_t>({0}, {1})),
                         errc::mixed_key_types, {"2"}));
  const tensor ids = tensor::from<std::int64_t>({0}, {1});
  EXPECT_TRUE(fails_with(fresh.row_sparse_pull({kvactor::key{"a"}, kvactor::key{3}},
                                               {rows, kvactor::row_sparse_output{}}, {ids, ids}),
                         errc::mixed_key_types, {"\"a\"", "3"}));
}

TEST_F(StoreErrors, ListLengthMismatch) {
  EXPECT_TRUE(
      fails_with(kv.push({1, 2}, {filled(s23, 1)}), errc::invalid_argument, {"2 keys", "1 value"}));
  EXPECT_TRUE(fails_with(kv.push({1, 2}, filled(s23, 1)), errc::invalid_argument, {"2 keys"}));
  std::vector<tensor> three = {tensor::zeros(s23), tensor::zeros(s23), tensor::zeros(s23)};
  EXPECT_TRUE(fails_with(kv.pull({1, 2}, three), errc::invalid_argument, {"3 output"}));
  std::vector<std::vector<tensor>> nested = {{filled(s23, 1)}};
  EXPECT_TRUE(fails_with(kv.push({1, 2}, nested), errc::invalid_argument, {"2 keys", "1 lists"}));
  EXPECT_TRUE(fails_with(kv.push(1, nested), errc::invalid_argument, {"single key"}));
  EXPECT_TRUE(fails_with(kv.push(std::vector<kvactor::key>{}, std::vector<tensor>{}),
                         errc::invalid_argument, {"no keys"}));
  EXPECT_TRUE(fails_with(kv.push(1, std::vector<tensor>{}), errc::invalid_argument, {"empty"}));
  EXPECT_TRUE(fails_with(kv.pull(1, kvactor::value_list{}), errc::invalid_argument, {"no output"}));
  expect_untouched();
}

TEST_F(StoreErrors, EmptyShapes) {
  EXPECT_TRUE(
      fails_with(kv.init(9, tensor::zeros(kvactor::shape{})), errc::invalid_argument, {"9", "()"}));
  EXPECT_TRUE(fails_with(kv.init(9, tensor::zeros({0})), errc::invalid_argument, {"(0,)"}));
  EXPECT_TRUE(fails_with(kv.init(9, tensor::zeros({4, 0})), errc::invalid_argument, {"(4, 0)"}));
  EXPECT_TRUE(fails_with(kv.pull(9, tensor::zeros({2, 3})), errc::not_initialized, {"9"}));
  expect_untouched();
}

// Many keys whose values and outputs alternate in one buffer (each in address order, the two
// interleaved), and outputs given in the reverse order: the check finds an overlap anywhere.
TEST_F(StoreErrors, OverlapsAmongManyInterleavedArrays) {
  constexpr int n = 40;
  std::vector<kvactor::key> keys;
  std::vector<tensor> init;
  for (int k = 0; k < n; ++k) {
    keys.emplace_back(std::int64_t{100 + k});
    init.push_back(filled(s23, static_cast<float>(k)));
  }
  kv.init(keys, init).get();
  std::vector<float> mem(2 * n * 6, -1.0f);
  const auto slot = [&](int i) { return tensor::view(mem.data() + 6 * i, s23); };
  std::vector<tensor> values, outs;
  for (int k = 0; k < n; ++k) {
    values.push_back(slot(2 * k));
    outs.push_back(slot(2 * (n - 1 - k) + 1));
  }
  std::vector<kvactor::key> reversed(keys.rbegin(), keys.rend());
  std::vector<tensor> values_reversed(values.rbegin(), values.rend());
  // Distinct memory: fine (each key's output is the slot after another key's value).
  kv.pushpull(reversed, values_reversed, outs).get();
  // Key 130's output is key 105's value.
  auto bad = outs;
  bad[30] = values[5];
  EXPECT_TRUE(fails_with(kv.pushpull(keys, values, bad), errc::invalid_argument,
                         {"overlaps a value", "130", "105"}));
  // Two outputs far apart in the list share memory.
  bad = outs;
  bad[3] = outs[n - 2];
  EXPECT_TRUE(fails_with(kv.pull(keys, bad), errc::invalid_argument, {"overlaps another output"}));
  // A key's output may be its own value (in place).
  auto in_place = outs;
  in_place[7] = values[7];
  EXPECT_TRUE(kv.pushpull(keys, values, in_place).get_status().is_ok());
  expect_untouched();
}

TEST_F(StoreErrors, NullValuesAndOutputs) {
  EXPECT_TRUE(fails_with(kv.pull(1, tensor{}), errc::invalid_argument, {"null output", "1"}));
  EXPECT_TRUE(fails_with(kv.pull({1, 2}, {tensor::zeros(s23), tensor{}}), errc::invalid_argument,
                         {"null output", "2"}));
  EXPECT_TRUE(fails_with(kv.push(1, {filled(s23, 1), tensor{}}), errc::invalid_argument,
                         {"null value", "#1"}));
  EXPECT_TRUE(fails_with(kv.init(6, tensor{}), errc::invalid_argument, {"null value", "6"}));
  expect_untouched();
}

TEST_F(StoreErrors, OverlappingOutputs) {
  tensor shared = tensor::zeros(s23);
  EXPECT_TRUE(fails_with(kv.pull({1, 2}, {shared, shared}), errc::invalid_argument,
                         {"overlaps another output"}));
  // Overlapping views of one buffer count too.
  std::vector<float> mem(9, -1.0f);
  tensor v1 = tensor::view(mem.data(), s23), v2 = tensor::view(mem.data() + 3, s23);
  EXPECT_TRUE(fails_with(kv.pull({1, 2}, {v1, v2}), errc::invalid_argument, {"overlaps"}));
  EXPECT_EQ(mem, std::vector<float>(9, -1.0f));
  // An output that is another key's value.
  tensor g = filled(s23, 1);
  EXPECT_TRUE(fails_with(kv.pushpull({1, 2}, {g, filled(s23, 1)}, {tensor::zeros(s23), g}),
                         errc::invalid_argument, {"overlaps a value"}));
  expect_untouched();
  // Distinct views of one buffer are fine, and in-place pushpull of its own value is fine.
  std::vector<float> mem2(12, 0.0f);
  kv.pull({1, 2}, {tensor::view(mem2.data(), s23), tensor::view(mem2.data() + 6, s23)}).get();
  EXPECT_EQ(mem2[0], 10.0f);
  EXPECT_EQ(mem2[6], 20.0f);
}

TEST_F(StoreErrors, UnsupportedDevice) {
  // No cuda tensor can be created without a device; creating one is the error. (With devices,
  // real or emulated, tests/integration/device_store_test.cpp covers device values.)
  if (kvactor::cuda_device_count() > 0) GTEST_SKIP() << "CUDA devices are present";
  try {
    tensor::zeros(s23, kvactor::dtype::float32, kvactor::device::cuda(0));
    FAIL() << "cuda tensor created without CUDA support";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::unsupported);
  }
}

TEST_F(StoreErrors, UpdaterFailure) {
  kv.set_updater([](const kvactor::key& k, const tensor&, tensor&) {
    if (k.as_int() == 2) throw std::runtime_error("refusing key two");
  });
  EXPECT_TRUE(
      fails_with(kv.push(2, filled(s23, 1)), errc::updater_failed, {"2", "refusing key two"}));
  // The store keeps working.
  kv.set_updater(nullptr);
  kv.push(1, filled(s23, 11)).get();
  tensor a = tensor::zeros(s23);
  kv.pull(1, a).get();
  EXPECT_TRUE(all_equal(a, 11));
}

TEST_F(StoreErrors, BadOptimizer) {
  EXPECT_TRUE(
      fails_with(kv.set_optimizer({"adamw2000", {}}), errc::invalid_argument, {"adamw2000"}));
  EXPECT_TRUE(fails_with(kv.set_optimizer({"sgd", {{"learning_rat", 0.1}}}), errc::invalid_argument,
                         {"learning_rat"}));
  EXPECT_TRUE(fails_with(kv.set_optimizer(kvactor::sgd_config(0.1, 1.5)), errc::invalid_argument,
                         {"momentum"}));
  // Still no updater: a push replaces.
  kv.push(1, filled(s23, 3)).get();
  tensor a = tensor::zeros(s23);
  kv.pull(1, a).get();
  EXPECT_TRUE(all_equal(a, 3));
}

TEST(StoreCreate, UnknownTypes) {
  try {
    kvactor::create("quantum");
    FAIL();
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string{e.what()}.find("quantum"), std::string::npos);
  }
  // Cluster stores outside a cluster (no DMLC_ROLE and friends): refused, naming what is missing,
  // the device variants as the plain ones.
  for (const char* type : {"dist_sync", "dist_sync_device", "dist_async_device"}) {
    try {
      kvactor::create(type);
      FAIL() << type;
    } catch (const kvactor::error& e) {
      EXPECT_EQ(e.code(), errc::invalid_argument) << type << ": " << e.what();
    }
  }
  kvactor::kvstore empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(empty.push(1, filled(s23, 1)), kvactor::error);
}
