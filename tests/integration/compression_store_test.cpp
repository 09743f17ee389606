// Gradient compression in a local store: each device's value is quantized with its own
// residual and the merge is the sum of the decoded values — checked bit for bit against a
// reference written here from the documented rules, over several pushes.
#include <gtest/gtest.h>

#include <cmath>

#include "kvactor/kvstore.hpp"
#include "test_util.hpp"

using kvactor::errc;
using kvactor::tensor;

namespace {

// 2-bit: r += g; r >= t gives +t, r <= -t gives -t (the residual keeps the rest), else 0.
float code_2bit(float g, float& r, float t) {
  r += g;
  if (r >= t) {
    r -= t;
    return t;
  }
  if (r <= -t) {
    r += t;
    return -t;
  }
  return 0.0f;
}

// 1-bit: r += g; r > t gives +1 (r -= 1), else -1 (r += 1).
float code_1bit(float g, float& r, float t) {
  r += g;
  if (r > t) {
    r -= 1.0f;
    return 1.0f;
  }
  r += 1.0f;
  return -1.0f;
}

void run(const std::string& type, float threshold, float (*code)(float, float&, float)) {
  const std::size_t n = 37;  // not a multiple of 16 or 32
  auto kv = kvactor::create("local");
  kv.init(1, tensor::zeros({static_cast<std::int64_t>(n)})).get();
  kv.set_gradient_compression(type, threshold).get();
  std::vector<std::vector<float>> residual(3, std::vector<float>(n, 0.0f));
  for (int step = 0; step < 5; ++step) {
    std::vector<tensor> devs;
    std::vector<float> expect(n, 0.0f);
    for (int d = 0; d < 3; ++d) {
      std::vector<float> g(n);
      for (std::size_t i = 0; i < n; ++i)
        g[i] = std::sin(0.7f * static_cast<float>(i) + static_cast<float>(d * 3 + step)) * 0.8f;
      for (std::size_t i = 0; i < n; ++i)
        expect[i] += code(g[i], residual[d][i], threshold);
      devs.push_back(tensor::from(g, {static_cast<std::int64_t>(n)}));
    }
    tensor out = tensor::zeros({static_cast<std::int64_t>(n)});
    kv.pushpull(1, devs, out).get();  // push (compressed) then pull, as one operation
    const float* got = out.cdata<float>();
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(got[i], expect[i]) << type << " step " << step << " element " << i;
  }
}

}  // namespace

TEST(CompressionStore, TwoBitMergeIsExact) {
  run("2bit", 0.5f, code_2bit);
}
TEST(CompressionStore, OneBitMergeIsExact) {
  run("1bit", 0.1f, code_1bit);
}

TEST(CompressionStore, SingleValuesAreNotCompressedAndErrorsAreClear) {
  auto kv = kvactor::create("local");
  kv.init({1, 2}, {tensor::zeros({4}), tensor::zeros({4}, kvactor::dtype::float64)}).get();
  kv.set_gradient_compression("2bit", 0.5).get();
  kv.push(1, tensor::full({4}, 0.3)).get();  // one value: no device-to-merge link
  tensor out = tensor::zeros({4});
  kv.pull(1, out).get();
  EXPECT_FLOAT_EQ(static_cast<float>(out.at(0)), 0.3f);
  auto st = kv.push(2, {tensor::zeros({4}, kvactor::dtype::float64),
                        tensor::zeros({4}, kvactor::dtype::float64)})
                .get_status();
  EXPECT_EQ(st.code(), errc::unsupported);
  EXPECT_NE(st.message().find("float64"), std::string::npos) << st.to_string();
  EXPECT_EQ(kv.set_gradient_compression("3bit").get_status().code(), errc::invalid_argument);
  EXPECT_EQ(kv.set_gradient_compression("2bit", -1).get_status().code(), errc::invalid_argument);
  // Turned off, merges are plain sums again.
  kv.set_gradient_compression("none").get();
  kv.push(1, {tensor::full({4}, 0.3), tensor::full({4}, 0.3)}).get();
  kv.pull(1, out).get();
  EXPECT_FLOAT_EQ(static_cast<float>(out.at(0)), 0.6f);
}
