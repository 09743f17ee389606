// User-registered store types (kvactor/custom_store.hpp), after MXNet's custom-store tests
// (tests/python/unittest/test_kvstore_custom.py and the TestStore of mxnet/kvstore/base.py):
// broadcast and pushpull of single and list key-value pairs, set_optimizer refused unless
// capable, type() is the registered name; and kvactor's own rules for registration.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kvactor/caf.hpp"
#include "kvactor/custom_store.hpp"
#include "test_util.hpp"

using kvactor::errc;
using kvactor::tensor;
using kvactor::testing::all_equal;

namespace {

// MXNet's TestStore: broadcast copies the value into every output; pushpull sums a list of
// values and writes the sum into the outputs (or back into the values).
class test_store : public kvactor::custom_store {
 public:
  kvactor::future<void> broadcast(const kvactor::key_list& keys, const kvactor::value_list& values,
                                  const kvactor::value_list& outs, int) override {
    for (std::size_t i = 0; i < keys.size(); ++i)
      for (auto& o : of(keys, outs, i))
        value_of(keys, values, i).copy_to(o);
    return done();
  }
  kvactor::future<void> pushpull(const kvactor::key_list& keys, const kvactor::value_list& values,
                                 const kvactor::value_list& outs, int) override {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto vals = of(keys, values, i);
      tensor sum = tensor::zeros(vals.front().shape(), vals.front().dtype());
      for (const auto& v : vals)
        for (std::size_t j = 0; j < sum.size(); ++j)
          sum.set(j, sum.at(j) + v.at(j));
      for (auto& o : outs.empty() ? vals : of(keys, outs, i))
        sum.copy_to(o);
    }
    return done();
  }
  bool is_capable(std::string_view capability) const override { return capability != "optimizer"; }

 private:
  static kvactor::future<void> done() { return kvactor::future<void>::ready_with({}); }
  // The tensors the call gives key i (one, a list for a single key, or one list per key).
  static std::vector<tensor> of(const kvactor::key_list& keys, const kvactor::value_list& v,
                                std::size_t i) {
    switch (v.shape()) {
      case kvactor::value_list::form::single:
        return {v.single()};
      case kvactor::value_list::form::list:
        return keys.is_list() ? std::vector<tensor>{v.flat()[i]} : v.flat();
      case kvactor::value_list::form::nested:
        return v.nested()[i];
      case kvactor::value_list::form::none:
        break;
    }
    throw kvactor::error{errc::invalid_argument, "no tensors"};
  }
  static tensor value_of(const kvactor::key_list& keys, const kvactor::value_list& v,
                         std::size_t i) {
    return of(keys, v, i).front();
  }
};

// Registered once per process: names are global and may not be registered twice.
void register_test_store() {
  static const bool once = [] {
    kvactor::register_store("teststore",
                            [](const kvactor::options&) { return std::make_unique<test_store>(); });
    return true;
  }();
  (void)once;
}

const kvactor::shape shape{4, 4};
const std::vector<kvactor::key> keys{5, 7, 11};

class CustomStore : public ::testing::Test {
 protected:
  kvactor::kvstore kv = (register_test_store(), kvactor::create("teststore"));
};

}  // namespace

TEST_F(CustomStore, BroadcastSingleKeyValuePair) {
  tensor out = tensor::zeros(shape);
  kv.broadcast(3, tensor::ones(shape), out).get();
  EXPECT_TRUE(all_equal(out, 1));
  std::vector<tensor> outs = {tensor::zeros(shape), tensor::zeros(shape)};
  kv.broadcast(3, tensor::full(shape, 2), outs).get();
  for (const auto& o : outs)
    EXPECT_TRUE(all_equal(o, 2));
}

TEST_F(CustomStore, BroadcastListKeyValuePair) {
  std::vector<tensor> outs = {tensor::zeros(shape), tensor::zeros(shape), tensor::zeros(shape)};
  kv.broadcast(kvactor::key_list(keys), std::vector<tensor>(3, tensor::full(shape, 4)), outs).get();
  for (const auto& o : outs)
    EXPECT_TRUE(all_equal(o, 4));
}

TEST_F(CustomStore, PushpullSingleKeyValuePair) {
  tensor out = tensor::zeros(shape);
  kv.pushpull(3, tensor::ones(shape), out).get();
  EXPECT_TRUE(all_equal(out, 1));
  // Values of several devices are summed; without outputs the sum goes back into them.
  std::vector<tensor> vals = {tensor::ones(shape), tensor::full(shape, 2), tensor::full(shape, 3)};
  kv.pushpull(3, vals, out).get();
  EXPECT_TRUE(all_equal(out, 6));
  kv.pushpull(3, vals).get();
  for (const auto& v : vals)
    EXPECT_TRUE(all_equal(v, 6));
  // The facade hands outputs over as given (no conversion): the store's own copy_to refuses a
  // float64 output, and what it throws is the call's error.
  tensor f64 = tensor::full(shape, -1, kvactor::dtype::float64);
  EXPECT_EQ(kv.pushpull(3, tensor::ones(shape), f64).get_status().code(), errc::dtype_mismatch);
  EXPECT_TRUE(all_equal(f64, -1));
}

TEST_F(CustomStore, PushpullListKeyValuePair) {
  std::vector<std::vector<tensor>> vals, outs;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    vals.push_back({tensor::ones(shape), tensor::full(shape, 2)});
    outs.push_back({tensor::zeros(shape), tensor::zeros(shape)});
  }
  kv.pushpull(kvactor::key_list(keys), vals, outs).get();
  for (const auto& list : outs)
    for (const auto& o : list)
      EXPECT_TRUE(all_equal(o, 3));
}

// MXNet's check_unsupported_methods: not capable of "optimizer", so set_optimizer is
// refused; what the store does not implement is unsupported.
TEST_F(CustomStore, SetOptimizerRefusedUnlessCapable) {
  EXPECT_FALSE(kv.is_capable("optimizer"));
  EXPECT_FALSE(kv.is_capable("OPTIMIZER"));
  EXPECT_EQ(kv.set_optimizer(kvactor::sgd_config(0.1)).get_status().code(), errc::unsupported);
  EXPECT_EQ(kv.save_optimizer_states("/nonexistent/x").get_status().code(), errc::unsupported);
  EXPECT_EQ(kv.load_optimizer_states("/nonexistent/x").get_status().code(), errc::unsupported);
  EXPECT_EQ(kv.pull(3, tensor::zeros(shape)).get_status().code(), errc::unsupported);
  EXPECT_EQ(kv.set_gradient_compression("2bit").get_status().code(), errc::unsupported);
  try {
    kv.set_updater([](const kvactor::key&, const tensor&, tensor&) {});
    ADD_FAILURE() << "set_updater was accepted";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::unsupported);
  }
  try {
    (void)kv.is_capable("teleport");
    ADD_FAILURE() << "an unknown capability was answered";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
  // An error nobody looked at reaches wait_all(), as for the built-in stores.
  kv.init(3, tensor::ones(shape));
  try {
    kv.wait_all();
    ADD_FAILURE() << "wait_all() did not report the dropped init's error";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::unsupported);
  }
}

TEST_F(CustomStore, TypeRankAndNoStoreActor) {
  EXPECT_EQ(kv.type(), "teststore");
  EXPECT_EQ(kv.rank(), 0);
  EXPECT_EQ(kv.num_workers(), 1);
  kv.barrier().get();
  try {
    (void)kvactor::store_actor(kv);
    ADD_FAILURE() << "a store actor for a custom store";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::unsupported);
  }
}

// A store capable of optimizers gets set_optimizer; one that throws or answers late is
// reported through the call's future, and destruction waits for what it returned.
TEST(CustomStoreRules, CapableStoresThrowingStoresAndLateAnswers) {
  struct capable : kvactor::custom_store {
    std::shared_ptr<std::atomic<int>> optimizers = std::make_shared<std::atomic<int>>(0);
    std::shared_ptr<kvactor::promise<void>> late = std::make_shared<kvactor::promise<void>>();
    bool is_capable(std::string_view) const override { return true; }
    kvactor::future<void> set_optimizer(const kvactor::optimizer_config&) override {
      ++*optimizers;
      return kvactor::future<void>::ready_with({});
    }
    kvactor::future<void> push(const kvactor::key_list&, const kvactor::value_list&, int) override {
      throw std::runtime_error("disk on fire");
    }
    kvactor::future<void> barrier() override { return late->get_future(); }
  };
  auto optimizers = std::make_shared<std::atomic<int>>(0);
  auto late = std::make_shared<kvactor::promise<void>>();
  kvactor::register_store("capable_store", [=](const kvactor::options&) {
    auto s = std::make_unique<capable>();
    s->optimizers = optimizers;
    s->late = late;
    return s;
  });
  std::thread answer;
  {
    auto kv = kvactor::create("capable_store");
    EXPECT_TRUE(kv.is_capable("optimizer"));
    kv.set_optimizer(kvactor::sgd_config(0.1)).get();
    EXPECT_EQ(optimizers->load(), 1);
    const auto st = kv.push(1, tensor::ones({2})).get_status();
    EXPECT_EQ(st.code(), errc::internal);
    EXPECT_NE(st.message().find("disk on fire"), std::string::npos) << st.to_string();
    auto b = kv.barrier();
    EXPECT_FALSE(b.ready());
    EXPECT_EQ(kv.outstanding(), 1u);
    answer = std::thread([late] { late->set_value(); });
  }  // waits for the barrier's answer
  answer.join();
}

TEST(CustomStoreRules, NamesAreUniqueAndUnknownNamesStillRefused) {
  auto factory = [](const kvactor::options&) { return std::make_unique<test_store>(); };
  for (const char* builtin : {"local", "device", "dist_sync", "dist_device_async"}) {
    try {
      kvactor::register_store(builtin, factory);
      ADD_FAILURE() << builtin << " was registered over the built-in type";
    } catch (const kvactor::error& e) {
      EXPECT_EQ(e.code(), errc::invalid_argument);
      EXPECT_NE(std::string{e.what()}.find("built-in"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(kvactor::register_store("", factory), kvactor::error);
  EXPECT_THROW(kvactor::register_store("no_factory", nullptr), kvactor::error);
  // Racing registrations of one name: exactly one wins.
  std::atomic<int> won{0}, lost{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      try {
        kvactor::register_store("raced_store", factory);
        ++won;
      } catch (const kvactor::error& e) {
        if (e.code() == errc::invalid_argument) ++lost;
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), 7);
  EXPECT_EQ(kvactor::create("raced_store").type(), "raced_store");
  // Unknown names are refused, naming the registered ones; so is a factory with no store.
  try {
    (void)kvactor::create("no_such_store");
    ADD_FAILURE() << "an unknown type was created";
  } catch (const kvactor::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
    EXPECT_NE(std::string{e.what()}.find("raced_store"), std::string::npos) << e.what();
  }
  kvactor::register_store("null_store", [](const kvactor::options&) {
    return std::unique_ptr<kvactor::custom_store>{};
  });
  EXPECT_THROW((void)kvactor::create("null_store"), kvactor::error);
  // Built-in types are unaffected.
  EXPECT_EQ(kvactor::create("local").type(), "local");
}
