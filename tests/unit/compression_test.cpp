// Gradient compression kernels (kvactor/compression.hpp), bit exact: hand-computed pushes with
// the residual carried, and a straightforward per-element reference written from the
// documented byte layout (bytes, not words, so the test does not share the kernels' masks).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvactor/compression.hpp"

namespace kvactor {
namespace {

namespace gc = compression;

constexpr float inf = std::numeric_limits<float>::infinity();
const float nan_f = std::numeric_limits<float>::quiet_NaN();

std::vector<std::uint8_t> bytes_of(const std::vector<std::uint32_t>& words) {
  std::vector<std::uint8_t> b(words.size() * 4);
  if (!words.empty()) std::memcpy(b.data(), words.data(), b.size());
  return b;
}

// Words whose in-memory bytes are b (the layout is defined on bytes).
std::vector<std::uint32_t> words_of(const std::vector<std::uint8_t>& b) {
  std::vector<std::uint32_t> w(b.size() / 4);
  if (!w.empty()) std::memcpy(w.data(), b.data(), b.size());
  return w;
}

// Little-endian word values (as written in the header's examples) → bytes.
std::vector<std::uint8_t> le_bytes(std::initializer_list<std::uint32_t> values) {
  std::vector<std::uint8_t> b;
  for (std::uint32_t v : values)
    for (int k = 0; k < 4; ++k)
      b.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
  return b;
}

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// ---------------------------------------------------------------- the documented reference

// 2-bit: element i in byte i/4, pair at bits 7-2c (high) and 6-2c (low), c = i%4;
// 11 = +t, 10 = -t, 00 = 0 (01 reads as 0).
unsigned ref_code2(const std::vector<std::uint8_t>& b, std::size_t i) {
  return (b[i / 4] >> (6 - 2 * (i % 4))) & 3u;
}
// 1-bit: element i in byte i/8, bit 7 - i%8; 1 = +1, 0 = -1.
unsigned ref_bit1(const std::vector<std::uint8_t>& b, std::size_t i) {
  return (b[i / 8] >> (7 - i % 8)) & 1u;
}

std::size_t ref_words(gc::kind k, std::size_t n) {
  const std::size_t e = k == gc::kind::two_bit ? 16 : k == gc::kind::one_bit ? 32 : 1;
  return (n + e - 1) / e;
}

// Quantizes like MXNet's per-element loops: residual += grad, then compare and adjust.
std::vector<std::uint8_t> ref_quantize(const gc::params& p, const std::vector<float>& grad,
                                       std::vector<float>& residual) {
  const std::size_t n = grad.size();
  std::vector<std::uint8_t> b(ref_words(p.type, n) * 4, 0);
  const float t = p.threshold;
  for (std::size_t i = 0; i < n; ++i) {
    float r = residual[i];
    r += grad[i];
    if (p.type == gc::kind::two_bit) {
      unsigned code = 0;
      if (r >= t) {
        code = 3;
        r -= t;
      } else if (r <= -t) {
        code = 2;
        r += t;
      }
      b[i / 4] = static_cast<std::uint8_t>(b[i / 4] | (code << (6 - 2 * (i % 4))));
    } else {
      if (r > t) {
        b[i / 8] = static_cast<std::uint8_t>(b[i / 8] | (1u << (7 - i % 8)));
        r -= 1.0f;
      } else {
        r += 1.0f;
      }
    }
    residual[i] = r;
  }
  return b;
}

float ref_decoded(const gc::params& p, const std::vector<std::uint8_t>& b, std::size_t i) {
  if (p.type == gc::kind::two_bit) {
    switch (ref_code2(b, i)) {
      case 3:
        return p.threshold;
      case 2:
        return -p.threshold;
      default:
        return 0.0f;
    }
  }
  return ref_bit1(b, i) ? 1.0f : -1.0f;
}

// Same bits, NaN matching any NaN.
::testing::AssertionResult same_floats(const std::vector<float>& got,
                                       const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (!both_nan && bits_of(got[i]) != bits_of(want[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << got[i] << " (0x" << std::hex << bits_of(got[i])
             << "), want " << std::dec << want[i] << " (0x" << std::hex << bits_of(want[i]) << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult same_bytes(const std::vector<std::uint8_t>& got,
                                      const std::vector<std::uint8_t>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return ::testing::AssertionFailure() << "byte " << i << ": got 0x" << std::hex
                                           << unsigned(got[i]) << ", want 0x" << unsigned(want[i]);
  return ::testing::AssertionSuccess();
}

// The kernel over the whole array; the words start as garbage so that unwritten bits show.
std::vector<std::uint32_t> quantize_all(const gc::params& p, const std::vector<float>& grad,
                                        std::vector<float>& residual) {
  const std::size_t n = grad.size();
  std::vector<std::uint32_t> w(gc::words(p.type, n), 0xA5A5A5A5u);
  gc::quantize(p, grad.data(), residual.data(), w.data(), n, 0, w.size());
  return w;
}

std::vector<float> dequantize_all(const gc::params& p, const std::vector<std::uint32_t>& w,
                                  std::size_t n) {
  std::vector<float> out(n, 12345.0f);
  gc::dequantize(p, w.data(), out.data(), n, 0, w.size());
  return out;
}

// Gradients of mixed magnitudes, some exactly +-t and some at exactly representable sums.
std::vector<float> random_grad(std::size_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, scale);
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<float> g(n);
  for (auto& x : g) {
    switch (pick(rng)) {
      case 0:
        x = scale;
        break;
      case 1:
        x = -scale;
        break;
      case 2:
        x = 0.0f;
        break;
      default:
        x = d(rng);
    }
  }
  return g;
}

// Runs body on every CPU code path the kernels have here (the CPU's best, then generic).
template <class Body>
void for_each_cpu_path(Body&& body) {
  for (bool generic : {false, true}) {
    gc::detail::force_generic(generic);
    SCOPED_TRACE(std::string("cpu path ") + gc::detail::cpu_path());
    body();
  }
  gc::detail::force_generic(false);
}

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

// ---------------------------------------------------------------- against the reference

TEST(Compression, MatchesReferenceOverSeveralPushes) {
  for_each_cpu_path([&] {
    std::mt19937_64 rng(7);
    const gc::params configs[] = {
        {gc::kind::two_bit, 0.5f}, {gc::kind::two_bit, 0.1f}, {gc::kind::two_bit, 3.0f},
        {gc::kind::one_bit, 0.0f}, {gc::kind::one_bit, 0.5f}, {gc::kind::one_bit, -0.25f},
    };
    for (const auto& p : configs) {
      for (std::size_t n : {1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 1000, 4099}) {
        SCOPED_TRACE(std::string(gc::to_string(p.type)) + " t=" + std::to_string(p.threshold) +
                     " n=" + std::to_string(n));
        std::vector<float> res(n, 0.0f), ref_res(n, 0.0f);
        for (int push = 0; push < 6; ++push) {
          SCOPED_TRACE("push " + std::to_string(push));
          const float scale = push % 2 ? std::abs(p.threshold) * 0.5f + 0.05f : 1.0f;
          const auto grad = random_grad(n, scale, rng);
          const auto want = ref_quantize(p, grad, ref_res);
          const auto w = quantize_all(p, grad, res);
          ASSERT_EQ(w.size(), ref_words(p.type, n));
          ASSERT_TRUE(same_bytes(bytes_of(w), want));
          ASSERT_TRUE(same_floats(res, ref_res));
          std::vector<float> dec_want(n);
          for (std::size_t i = 0; i < n; ++i)
            dec_want[i] = ref_decoded(p, want, i);
          ASSERT_TRUE(same_floats(dequantize_all(p, w, n), dec_want));
        }
      }
    }
  });
}

// Bits of the last word past element n-1 are 0 even when every element sets its bits and the
// words held garbage before.
TEST(Compression, PaddingBitsAreZero) {
  for_each_cpu_path([&] {
    for (std::size_t n : {1, 15, 17, 31, 33, 1000}) {
      SCOPED_TRACE("n=" + std::to_string(n));
      {
        const gc::params p{gc::kind::two_bit, 0.5f};
        std::vector<float> grad(n, 2.0f), res(n, 0.0f);
        const auto b = bytes_of(quantize_all(p, grad, res));  // all codes 11
        for (std::size_t bit = 0; bit < b.size() * 8; ++bit) {
          const std::size_t byte = bit / 8, pos = 7 - bit % 8;  // MSB first within a byte
          const std::size_t element = bit / 2;
          const bool set = (b[byte] >> pos) & 1u;
          ASSERT_EQ(set, element < n) << "2bit bit " << bit;
        }
      }
      {
        const gc::params p{gc::kind::one_bit, 0.0f};
        std::vector<float> grad(n, 2.0f), res(n, 0.0f);
        const auto b = bytes_of(quantize_all(p, grad, res));  // all bits 1
        for (std::size_t bit = 0; bit < b.size() * 8; ++bit) {
          const bool set = (b[bit / 8] >> (7 - bit % 8)) & 1u;
          ASSERT_EQ(set, bit < n) << "1bit bit " << bit;
        }
      }
    }
  });
}

// Element positions one at a time: a single +t (or 1) moves through the bytes in the
// documented order.
TEST(Compression, EachElementHasItsDocumentedBits) {
  for_each_cpu_path([&] {
    for (std::size_t n : {16, 17, 32, 33}) {
      for (std::size_t e = 0; e < n; ++e) {
        SCOPED_TRACE("n=" + std::to_string(n) + " element " + std::to_string(e));
        std::vector<float> grad(n, 0.0f), res(n, 0.0f);
        grad[e] = 1.0f;
        auto b2 = bytes_of(quantize_all({gc::kind::two_bit, 0.5f}, grad, res));
        std::vector<std::uint8_t> want2(b2.size(), 0);
        want2[e / 4] = static_cast<std::uint8_t>(0xC0u >> (2 * (e % 4)));
        ASSERT_TRUE(same_bytes(b2, want2));
        grad[e] = -1.0f;
        b2 = bytes_of(quantize_all({gc::kind::two_bit, 0.5f}, grad, res));
        want2[e / 4] = static_cast<std::uint8_t>(0x80u >> (2 * (e % 4)));
        ASSERT_TRUE(same_bytes(b2, want2));

        std::vector<float> g1(n, -1.0f), r1(n, 0.0f);
        g1[e] = 1.0f;
        auto b1 = bytes_of(quantize_all({gc::kind::one_bit, 0.0f}, g1, r1));
        std::vector<std::uint8_t> want1(b1.size(), 0);
        want1[e / 8] = static_cast<std::uint8_t>(0x80u >> (e % 8));
        ASSERT_TRUE(same_bytes(b1, want1));
      }
    }
  });
}

// The AVX2 and generic paths give the same words and residuals on a long array, where whole
// words run through the vector loops (the reference test above covers the rest).
TEST(Compression, CpuPathsAgree) {
  std::mt19937_64 rng(3);
  const std::size_t n = 100003;
  for (const gc::params& p :
       {gc::params{gc::kind::two_bit, 0.5f}, gc::params{gc::kind::one_bit, 0.0f}}) {
    SCOPED_TRACE(gc::to_string(p.type));
    std::vector<float> res_best(n, 0.0f), res_generic(n, 0.0f);
    for (int push = 0; push < 3; ++push) {
      auto grad = random_grad(n, 1.0f, rng);
      grad[5] = nan_f;
      grad[6] = inf;
      grad[7] = -inf;
      gc::detail::force_generic(false);
      const auto w_best = quantize_all(p, grad, res_best);
      const auto d_best = dequantize_all(p, w_best, n);
      gc::detail::force_generic(true);
      const auto w_generic = quantize_all(p, grad, res_generic);
      const auto d_generic = dequantize_all(p, w_generic, n);
      gc::detail::force_generic(false);
      ASSERT_EQ(w_best, w_generic);
      ASSERT_TRUE(same_floats(res_best, res_generic));
      ASSERT_TRUE(same_floats(d_best, d_generic));
    }
  }
  const std::string path = gc::detail::cpu_path();
  EXPECT_TRUE(path == "avx2" || path == "generic") << path;
  gc::detail::force_generic(true);
  EXPECT_STREQ(gc::detail::cpu_path(), "generic");
  gc::detail::force_generic(false);
}

// ---------------------------------------------------------------- ranges

TEST(Compression, RangeSplitsGiveTheWholeArrayResult) {
  for_each_cpu_path([&] {
    std::mt19937_64 rng(11);
    const gc::params configs[] = {
        {gc::kind::two_bit, 0.5f}, {gc::kind::one_bit, 0.0f}, {gc::kind::none, 0.5f}};
    for (const auto& p : configs) {
      for (std::size_t n : {1, 17, 33, 1000, 1001}) {
        SCOPED_TRACE(std::string(gc::to_string(p.type)) + " n=" + std::to_string(n));
        const std::size_t nw = gc::words(p.type, n);
        const auto grad = random_grad(n, 1.0f, rng);
        const auto res0 = random_grad(n, 0.3f, rng);
        std::vector<float> res_whole = res0;
        const auto w_whole = quantize_all(p, grad, res_whole);
        const auto d_whole = dequantize_all(p, w_whole, n);

        // Every two-way split point, the second half first.
        for (std::size_t cut = 0; cut <= nw; cut += (nw > 80 ? 7 : 1)) {
          std::vector<float> res = res0;
          std::vector<std::uint32_t> w(nw, 0x5A5A5A5Au);
          gc::quantize(p, grad.data(), res.data(), w.data(), n, cut, nw);
          gc::quantize(p, grad.data(), res.data(), w.data(), n, 0, cut);
          ASSERT_EQ(w, w_whole) << "cut " << cut;
          ASSERT_TRUE(same_floats(res, res_whole)) << "cut " << cut;
          std::vector<float> d(n, 7.0f);
          gc::dequantize(p, w.data(), d.data(), n, cut, nw);
          gc::dequantize(p, w.data(), d.data(), n, 0, cut);
          ASSERT_TRUE(same_floats(d, d_whole)) << "cut " << cut;
        }

        // Uneven ranges on threads at once.
        const std::size_t parts = std::min<std::size_t>(nw, 5);
        std::vector<std::size_t> bounds{0};
        for (std::size_t i = 1; i < parts; ++i)
          bounds.push_back(nw * i * i / (parts * parts));
        bounds.push_back(nw);
        std::vector<float> res = res0, d(n, 7.0f), acc(n, 0.0f);
        std::vector<std::uint32_t> w(nw, 0x5A5A5A5Au);
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i + 1 < bounds.size(); ++i)
          threads.emplace_back([&, i] {
            gc::quantize(p, grad.data(), res.data(), w.data(), n, bounds[i], bounds[i + 1]);
            gc::dequantize(p, w.data(), d.data(), n, bounds[i], bounds[i + 1]);
            gc::dequantize_add(p, w.data(), acc.data(), n, bounds[i], bounds[i + 1]);
          });
        for (auto& t : threads)
          t.join();
        ASSERT_EQ(w, w_whole);
        ASSERT_TRUE(same_floats(res, res_whole));
        ASSERT_TRUE(same_floats(d, d_whole));
        ASSERT_TRUE(same_floats(acc, d_whole));  // 0 + x == x for every decoded value
      }
    }
  });
}

TEST(Compression, EmptyRangesTouchNothing) {
  const gc::params p{gc::kind::two_bit, 0.5f};
  std::vector<float> grad(40, 1.0f), res(40, 0.25f), out(40, 9.0f);
  std::vector<std::uint32_t> w(3, 0xDEADBEEFu);
  for (std::size_t at : {0, 1, 2, 3}) {
    gc::quantize(p, grad.data(), res.data(), w.data(), 40, at, at);
    gc::dequantize(p, w.data(), out.data(), 40, at, at);
    gc::dequantize_add(p, w.data(), out.data(), 40, at, at);
  }
  EXPECT_EQ(w, std::vector<std::uint32_t>(3, 0xDEADBEEFu));
  EXPECT_TRUE(same_floats(res, std::vector<float>(40, 0.25f)));
  EXPECT_TRUE(same_floats(out, std::vector<float>(40, 9.0f)));
  gc::quantize(p, nullptr, nullptr, nullptr, 0, 0, 0);  // n = 0: no words, nothing read
}

// A range of whole words touches only its own elements.
TEST(Compression, RangeTouchesOnlyItsElements) {
  for_each_cpu_path([&] {
    const gc::params p{gc::kind::two_bit, 0.5f};
    std::vector<float> grad(50, 1.0f), res(50, 0.0f), out(50, 9.0f);
    std::vector<std::uint32_t> w(4, 0xDEADBEEFu);
    gc::quantize(p, grad.data(), res.data(), w.data(), 50, 1, 2);  // elements 16..31
    gc::dequantize(p, w.data(), out.data(), 50, 1, 2);
    for (std::size_t i = 0; i < 50; ++i) {
      const bool inside = i >= 16 && i < 32;
      EXPECT_EQ(res[i], inside ? 0.5f : 0.0f) << i;
      EXPECT_EQ(out[i], inside ? 0.5f : 9.0f) << i;
    }
    EXPECT_EQ(w[0], 0xDEADBEEFu);
    EXPECT_EQ(w[1], 0xFFFFFFFFu);
    EXPECT_EQ(w[2], 0xDEADBEEFu);
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
