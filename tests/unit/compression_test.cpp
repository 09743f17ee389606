// Gradient compression kernels (kvactor/detail/compression.hpp), bit exact: sizes and parsing,
// hand-computed pushes with the residual carried, decoding and non-finite gradients. The
// reference (compression_reference.hpp) is written from the documented byte layout; the
// comparisons with it over many pushes and ranges are in compression_reference_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "compression_reference.hpp"
#include "kvactor/detail/compression.hpp"

namespace kvactor {
namespace {

using namespace compression_reference;

// ---------------------------------------------------------------- sizes and parsing

TEST(Compression, WordCounts) {
  using gc::kind;
  EXPECT_EQ(gc::elements_per_word(kind::two_bit), 16u);
  EXPECT_EQ(gc::elements_per_word(kind::one_bit), 32u);
  EXPECT_EQ(gc::elements_per_word(kind::none), 1u);
  const std::size_t ns[] = {0, 1, 15, 16, 17, 31, 32, 33, 1000, 1u << 20};
  const std::size_t w2[] = {0, 1, 1, 1, 2, 2, 2, 3, 63, 65536};
  const std::size_t w1[] = {0, 1, 1, 1, 1, 1, 1, 2, 32, 32768};
  for (std::size_t k = 0; k < std::size(ns); ++k) {
    EXPECT_EQ(gc::words(kind::two_bit, ns[k]), w2[k]) << ns[k];
    EXPECT_EQ(gc::words(kind::one_bit, ns[k]), w1[k]) << ns[k];
    EXPECT_EQ(gc::words(kind::none, ns[k]), ns[k]);
  }
}

TEST(Compression, ParseAcceptsMxnetTypes) {
  auto two = gc::parse("2bit", 0.5);
  ASSERT_TRUE(two) << two.error().to_string();
  EXPECT_EQ(two->type, gc::kind::two_bit);
  EXPECT_EQ(two->threshold, 0.5f);

  auto one = gc::parse("1bit", 0.0);  // any finite threshold for 1bit, 0 and negatives too
  ASSERT_TRUE(one);
  EXPECT_EQ(one->type, gc::kind::one_bit);
  EXPECT_EQ(one->threshold, 0.0f);
  auto one_neg = gc::parse("1bit", -0.25);
  ASSERT_TRUE(one_neg);
  EXPECT_EQ(one_neg->threshold, -0.25f);

  auto none = gc::parse("none", std::nan(""));  // threshold ignored
  ASSERT_TRUE(none);
  EXPECT_EQ(none->type, gc::kind::none);

  auto rounded = gc::parse("2bit", 0.1);
  ASSERT_TRUE(rounded);
  EXPECT_EQ(rounded->threshold, 0.1f);

  EXPECT_EQ(gc::params{}.threshold, 0.5f);  // MXNet's default
  EXPECT_EQ(gc::params{}.type, gc::kind::none);
  EXPECT_STREQ(gc::to_string(gc::kind::two_bit), "2bit");
  EXPECT_STREQ(gc::to_string(gc::kind::one_bit), "1bit");
  EXPECT_STREQ(gc::to_string(gc::kind::none), "none");
}

TEST(Compression, ParseRejectsBadValuesNamingThem) {
  struct bad {
    std::string type;
    double threshold;
    std::string named;
  };
  const bad cases[] = {
      {"3bit", 0.5, "'3bit'"},
      {"2BIT", 0.5, "'2BIT'"},
      {"", 0.5, "''"},
      {"2bit", 0.0, "threshold 0 "},
      {"2bit", -0.5, "threshold -0.5 "},
      {"2bit", -0.1, "threshold -0.1 "},
      {"2bit", 1e-50, "threshold 1e-50 "},  // rounds to 0 as a float
      {"2bit", std::numeric_limits<double>::infinity(), "threshold inf "},
      {"2bit", std::nan(""), "threshold nan "},
      {"1bit", std::nan(""), "threshold nan "},
      {"1bit", 1e300, "threshold 1e+300 "},  // inf as a float
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.type + " " + std::to_string(c.threshold));
    auto r = gc::parse(c.type, c.threshold);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), errc::invalid_argument);
    EXPECT_NE(r.error().message().find(c.named), std::string::npos) << r.error().message();
  }
}

// ---------------------------------------------------------------- hand-computed sequences

// Threshold 0.5; elements 0..7 follow the table below, 8..15 repeat 0..7 and 16..19 repeat
// 0..3 (so word 0 is whole and word 1 holds 4 elements and 12 padding pairs).
TEST(Compression, TwoBitHandComputedPushesWithResidual) {
  for_each_cpu_path([&] {
    const gc::params p{gc::kind::two_bit, 0.5f};
    auto spread = [](std::vector<float> v8) {
      std::vector<float> v(20);
      for (std::size_t i = 0; i < 20; ++i)
        v[i] = v8[i % 8];
      return v;
    };
    struct push {
      std::vector<float> grad, decoded, residual;
      std::uint8_t byte0, byte1;  // codes of elements 0..3 and 4..7
    };
    const push pushes[] = {
        // r = g:          +    -    0      0      +     -      0    0
        {{0.5f, -0.5f, 0.25f, -0.25f, 0.75f, -1.25f, 0.0f, 0.375f},
         {0.5f, -0.5f, 0.0f, 0.0f, 0.5f, -0.5f, 0.0f, 0.0f},
         {0.0f, 0.0f, 0.25f, -0.25f, 0.25f, -0.75f, 0.0f, 0.375f},
         0xE0,   // 11 10 00 00
         0xE0},  // 11 10 00 00
        // r + g:          0    0    0.5+   -0.5-  0.25   -0.75-  -0.5-  0.5+
        {{0.0f, 0.0f, 0.25f, -0.25f, 0.0f, 0.0f, -0.5f, 0.125f},
         {0.0f, 0.0f, 0.5f, -0.5f, 0.0f, -0.5f, -0.5f, 0.5f},
         {0.0f, 0.0f, 0.0f, 0.0f, 0.25f, -0.25f, 0.0f, 0.0f},
         0x0E,   // 00 00 11 10
         0x2B},  // 00 10 10 11
        // r + g:          -0.125 0.125 0  0   0.75+  0     0    -1.0-
        {{-0.125f, 0.125f, 0.0f, 0.0f, 0.5f, 0.25f, 0.0f, -1.0f},
         {0.0f, 0.0f, 0.0f, 0.0f, 0.5f, 0.0f, 0.0f, -0.5f},
         {-0.125f, 0.125f, 0.0f, 0.0f, 0.25f, 0.0f, 0.0f, -0.5f},
         0x00,
         0xC2},  // 11 00 00 10
    };
    std::vector<float> residual(20, 0.0f);
    int k = 0;
    for (const auto& ps : pushes) {
      SCOPED_TRACE("push " + std::to_string(++k));
      const auto w = quantize_all(p, spread(ps.grad), residual);
      ASSERT_EQ(w.size(), 2u);
      const std::uint32_t word0 =
          ps.byte0 | (ps.byte1 << 8) | (ps.byte0 << 16) | (std::uint32_t{ps.byte1} << 24);
      EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({word0, ps.byte0})));
      EXPECT_TRUE(same_floats(residual, spread(ps.residual)));
      EXPECT_TRUE(same_floats(dequantize_all(p, w, 20), spread(ps.decoded)));
    }
  });
}

// The header's example: codes (+t, -t, 0, +t) for elements 0..3 give byte 0xE3.
TEST(Compression, TwoBitHeaderExample) {
  const gc::params p{gc::kind::two_bit, 0.5f};
  std::vector<float> grad{1.0f, -1.0f, 0.0f, 0.5f}, residual(4, 0.0f);
  const auto w = quantize_all(p, grad, residual);
  EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({0x000000E3u})));
  EXPECT_TRUE(same_floats(residual, {0.5f, -0.5f, 0.0f, 0.0f}));
}

// Threshold 0.25 for 1-bit: a decision point only, the decoded values are +-1. Elements 0..7
// follow the table, repeated to n = 40 (word 0 whole, word 1 holds 8 elements).
TEST(Compression, OneBitHandComputedPushesWithResidual) {
  for_each_cpu_path([&] {
    const gc::params p{gc::kind::one_bit, 0.25f};
    auto spread = [](std::vector<float> v8) {
      std::vector<float> v(40);
      for (std::size_t i = 0; i < 40; ++i)
        v[i] = v8[i % 8];
      return v;
    };
    struct push {
      std::vector<float> grad, decoded, residual;
      std::uint8_t byte;
    };
    const push pushes[] = {
        // r = g:  0.5>  0.25!>  -0.5  0    2>    0.3125>  -2   0.125
        {{0.5f, 0.25f, -0.5f, 0.0f, 2.0f, 0.3125f, -2.0f, 0.125f},
         {1.0f, -1.0f, -1.0f, -1.0f, 1.0f, 1.0f, -1.0f, -1.0f},
         {-0.5f, 1.25f, 0.5f, 1.0f, 1.0f, -0.6875f, -1.0f, 1.125f},
         0x8C},  // 1000 1100
        // r + g: -0.5  1.25>  0.5>  0   0     0.3125>  -1   0.25!>
        {{0.0f, 0.0f, 0.0f, -1.0f, -1.0f, 1.0f, 0.0f, -0.875f},
         {-1.0f, 1.0f, 1.0f, -1.0f, -1.0f, 1.0f, -1.0f, -1.0f},
         {0.5f, 0.25f, -0.5f, 1.0f, 1.0f, -0.6875f, 0.0f, 1.25f},
         0x64},  // 0110 0100
    };
    std::vector<float> residual(40, 0.0f);
    int k = 0;
    for (const auto& ps : pushes) {
      SCOPED_TRACE("push " + std::to_string(++k));
      const auto w = quantize_all(p, spread(ps.grad), residual);
      ASSERT_EQ(w.size(), 2u);
      const std::uint32_t b = ps.byte;
      EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({b | b << 8 | b << 16 | b << 24, b})));
      EXPECT_TRUE(same_floats(residual, spread(ps.residual)));
      EXPECT_TRUE(same_floats(dequantize_all(p, w, 40), spread(ps.decoded)));
    }
  });
}

// ---------------------------------------------------------------- decoding

TEST(Compression, DequantizeAddAccumulatesSenders) {
  for_each_cpu_path([&] {
    std::mt19937_64 rng(5);
    for (const gc::params& p :
         {gc::params{gc::kind::two_bit, 0.5f}, gc::params{gc::kind::one_bit, 0.0f},
          gc::params{gc::kind::none, 0.5f}}) {
      for (std::size_t n : {1, 17, 33, 1000}) {
        SCOPED_TRACE(std::string(gc::to_string(p.type)) + " n=" + std::to_string(n));
        // Three senders, each with its own residual.
        std::vector<std::vector<std::uint32_t>> sent;
        for (int s = 0; s < 3; ++s) {
          std::vector<float> res(n, 0.0f);
          sent.push_back(quantize_all(p, random_grad(n, 1.0f, rng), res));
        }
        // Into a non-zero accumulator: acc + d0 + d1 + d2, added in sender order.
        const auto acc0 = random_grad(n, 2.0f, rng);
        std::vector<float> acc = acc0, want = acc0;
        for (const auto& w : sent) {
          gc::dequantize_add(p, w.data(), acc.data(), n, 0, w.size());
          const auto d = dequantize_all(p, w, n);
          for (std::size_t i = 0; i < n; ++i)
            want[i] = want[i] + d[i];
        }
        ASSERT_TRUE(same_floats(acc, want));
      }
    }
  });
}

TEST(Compression, DequantizeAddIsAFloatAddForZeroCodes) {
  const gc::params p{gc::kind::two_bit, 0.5f};
  const std::vector<std::uint32_t> w{0u};  // all codes 00
  std::vector<float> acc{-0.0f, 1.5f, -inf};
  gc::dequantize_add(p, w.data(), acc.data(), 3, 0, 1);
  EXPECT_TRUE(same_floats(acc, {0.0f, 1.5f, -inf}));  // -0 + +0 = +0
}

TEST(Compression, DecodedZeroIsPositiveAndCode01ReadsAsZero) {
  for_each_cpu_path([&] {
    const gc::params p{gc::kind::two_bit, 0.75f};
    // Element 0: 01, element 1: 11, element 2: 10, element 3: 00; byte 0 = 01 11 10 00.
    const auto w = words_of(le_bytes({0x00000078u}));
    const auto d = dequantize_all(p, w, 4);
    EXPECT_TRUE(same_floats(d, {0.0f, 0.75f, -0.75f, 0.0f}));
    EXPECT_FALSE(std::signbit(d[0]));
    EXPECT_FALSE(std::signbit(d[3]));
  });
}

TEST(Compression, NoneIsTheFloatBits) {
  const gc::params p{gc::kind::none, 0.5f};
  std::vector<float> grad{1.5f, -0.0f, 3.0f}, res{7.0f, 7.0f, 7.0f};
  const auto w = quantize_all(p, grad, res);
  ASSERT_EQ(w.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i)
    EXPECT_EQ(w[i], bits_of(grad[i]));
  EXPECT_TRUE(same_floats(res, {7.0f, 7.0f, 7.0f}));  // the residual is left alone
  EXPECT_TRUE(same_floats(dequantize_all(p, w, 3), grad));
}

// ---------------------------------------------------------------- non-finite gradients

TEST(Compression, NonFiniteGradientsFollowIeeeAndStickInTheResidual) {
  for_each_cpu_path([&] {
    {
      const gc::params p{gc::kind::two_bit, 0.5f};
      std::vector<float> grad{nan_f, inf, -inf, 1.0f}, res(4, 0.0f);
      auto w = quantize_all(p, grad, res);
      // codes 00 (NaN), 11 (+inf), 10 (-inf), 11: byte 00 11 10 11 = 0x3B
      EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({0x3Bu})));
      EXPECT_TRUE(same_floats(res, {nan_f, inf, -inf, 0.5f}));
      EXPECT_TRUE(same_floats(dequantize_all(p, w, 4), {0.0f, 0.5f, -0.5f, 0.5f}));
      // A zero gradient next time: the non-finite residuals send the same codes again.
      std::vector<float> zero(4, 0.0f);
      w = quantize_all(p, zero, res);
      EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({0x3Bu})));  // 0.5 >= t: 11 again
      EXPECT_TRUE(same_floats(res, {nan_f, inf, -inf, 0.0f}));
      // +inf meeting -inf gives NaN: code 00 from then on.
      std::vector<float> flip{0.0f, -inf, inf, 0.0f};
      w = quantize_all(p, flip, res);
      EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({0x00u})));
      EXPECT_TRUE(same_floats(res, {nan_f, nan_f, nan_f, 0.0f}));
    }
    {
      const gc::params p{gc::kind::one_bit, 0.0f};
      std::vector<float> grad{nan_f, inf, -inf, 1.0f}, res(4, 0.0f);
      const auto w = quantize_all(p, grad, res);
      // bits 0 (NaN), 1, 0, 1: byte 0101 0000 = 0x50
      EXPECT_TRUE(same_bytes(bytes_of(w), le_bytes({0x50u})));
      EXPECT_TRUE(same_floats(res, {nan_f, inf, -inf, 0.0f}));
      EXPECT_TRUE(same_floats(dequantize_all(p, w, 4), {-1.0f, 1.0f, -1.0f, 1.0f}));
    }
  });
}

}  // namespace
}  // namespace kvactor
