#include <gtest/gtest.h>

#include "kvactor/kvstore.hpp"

using kvactor::tensor;

TEST(LocalStoreSmoke, InitPushPull) {
  auto kv = kvactor::create("local");
  kv.init(3, tensor::ones({2, 3})).get();
  tensor a = tensor::zeros({2, 3});
  kv.pull(3, a).get();
  EXPECT_EQ(a.to_vector(), std::vector<double>(6, 1.0));
  kv.push(3,
          {tensor::ones({2, 3}), tensor::ones({2, 3}), tensor::ones({2, 3}), tensor::ones({2, 3})});
  kv.pull(3, a).get();
  EXPECT_EQ(a.to_vector(), std::vector<double>(6, 4.0));
}
