// dtype names and sizes, and the binary16 / bfloat16 conversions, checked against value-level
// references (reference.hpp) rather than against bit manipulations.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include "kvactor/dtype.hpp"
#include "reference.hpp"

namespace kvactor {
namespace {

using unit::bf16_is_nan;
using unit::bf16_value;
using unit::half_is_nan;
using unit::half_value;
using unit::nearest_bf16;
using unit::nearest_half;

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---------------------------------------------------------------- names, sizes, traits

TEST(Dtype, NamesRoundTripAndAreDistinct) {
  std::set<std::string> names;
  for (auto t : all_dtypes) {
    const std::string name = to_string(t);
    EXPECT_TRUE(names.insert(name).second) << name;
    auto parsed = parse_dtype(name);
    ASSERT_TRUE(parsed.has_value()) << name;
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(names, (std::set<std::string>{"float32", "float16", "bfloat16", "float64", "int32",
                                          "int64", "uint8"}));
}

// Streams and GoogleTest (parameters in ctest's listing, failure messages) print the name.
TEST(Dtype, PrintsByName) {
  std::ostringstream os;
  os << dtype::bfloat16 << ' ' << dtype::uint8;
  EXPECT_EQ(os.str(), "bfloat16 uint8");
  EXPECT_EQ(::testing::PrintToString(dtype::int64), "int64");
}

TEST(Dtype, ParseRejectsUnknownNames) {
  for (const char* bad : {"", "float", "Float32", "float32 ", "fp16", "int8", "uint8\n", "bf16"})
    EXPECT_FALSE(parse_dtype(bad).has_value()) << '"' << bad << '"';
}

TEST(Dtype, SizesMatchTheCxxTypes) {
  EXPECT_EQ(size_of(dtype::float32), sizeof(float));
  EXPECT_EQ(size_of(dtype::float64), sizeof(double));
  EXPECT_EQ(size_of(dtype::float16), 2u);
  EXPECT_EQ(size_of(dtype::bfloat16), 2u);
  EXPECT_EQ(size_of(dtype::int32), sizeof(std::int32_t));
  EXPECT_EQ(size_of(dtype::int64), sizeof(std::int64_t));
  EXPECT_EQ(size_of(dtype::uint8), 1u);
  static_assert(sizeof(float16) == 2 && sizeof(bfloat16) == 2);
}

TEST(Dtype, IsFloatingAndVisitAgree) {
  for (auto t : all_dtypes) {
    // visit_dtype hands over the C++ type whose dtype_of is t and whose size is size_of(t).
    auto [mapped, size] = visit_dtype(t, [](auto tag) {
      using T = decltype(tag);
      return std::make_pair(dtype_of_v<T>, sizeof(T));
    });
    EXPECT_EQ(mapped, t) << to_string(t);
    EXPECT_EQ(size, size_of(t)) << to_string(t);
    const bool floating =
        t == dtype::float32 || t == dtype::float64 || t == dtype::float16 || t == dtype::bfloat16;
    EXPECT_EQ(is_floating(t), floating) << to_string(t);
  }
}

// ---------------------------------------------------------------- float16 -> float

TEST(Float16, DecodesEveryBitPatternByTheValueFormula) {
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float f = to_float(float16{bits});
    const double want = half_value(bits);
    if (half_is_nan(bits)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << b;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << std::hex << b;
    ASSERT_EQ(std::signbit(f), (bits & 0x8000) != 0) << std::hex << b;
  }
}

TEST(Float16, EveryBitPatternRoundTrips) {
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float16 back = to_float16(to_float(float16{bits}));
    if (half_is_nan(bits)) {
      EXPECT_TRUE(half_is_nan(back.bits)) << std::hex << b << " -> " << back.bits;
      EXPECT_EQ(back.bits & 0x8000, bits & 0x8000) << "NaN keeps its sign";
    } else {
      ASSERT_EQ(back.bits, bits) << std::hex << b;
    }
  }
}

// ---------------------------------------------------------------- float -> float16

TEST(Float16, MidpointsRoundToEvenAndNeighboursToTheNearer) {
  // Between every pair of adjacent positive finite halves (subnormal and normal).
  for (std::uint32_t h = 0; h < 0x7bff; ++h) {
    const double lo = half_value(static_cast<std::uint16_t>(h));
    const double hi = half_value(static_cast<std::uint16_t>(h + 1));
    const float mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2) << "midpoint must be exact in float";
    const std::uint16_t even =
        (h & 1) ? static_cast<std::uint16_t>(h + 1) : static_cast<std::uint16_t>(h);
    for (float sign : {1.0f, -1.0f}) {
      const std::uint16_t s = sign < 0 ? 0x8000 : 0;
      ASSERT_EQ(to_float16(sign * mid).bits, s | even) << std::hex << h;
      const float above = std::nextafter(mid, std::numeric_limits<float>::infinity());
      const float below = std::nextafter(mid, 0.0f);
      ASSERT_EQ(to_float16(sign * above).bits, s | (h + 1)) << std::hex << h;
      ASSERT_EQ(to_float16(sign * below).bits, s | h) << std::hex << h;
    }
  }
}

TEST(Float16, SampledFloatsMatchTheNearestValueSearch) {
  // Every 16411th binary32 pattern (16411 is prime: all exponents and mantissa residues), plus
  // random patterns.
  std::mt19937 rng(12345);
  auto check = [](std::uint32_t u) {
    const float f = float_of(u);
    const float16 got = to_float16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(half_is_nan(got.bits)) << std::hex << u;
      return;
    }
    EXPECT_EQ(got.bits, nearest_half(static_cast<double>(f))) << std::hex << u << " " << f;
  };
  for (std::uint64_t u = 0; u <= 0xffffffffull; u += 16411)
    check(static_cast<std::uint32_t>(u));
  for (int i = 0; i < 100000; ++i)
    check(rng());
}

TEST(Float16, Subnormals) {
  const float tiny = std::ldexp(1.0f, -24);  // smallest positive half subnormal
  EXPECT_EQ(to_float16(tiny).bits, 0x0001);
  EXPECT_EQ(to_float16(3 * tiny).bits, 0x0003);
  EXPECT_EQ(to_float16(1023 * tiny).bits, 0x03ff);  // largest subnormal
  EXPECT_EQ(to_float16(1024 * tiny).bits, 0x0400);  // smallest normal, 2^-14
  // Ties at the bottom: 2^-25 lies half way between 0 and 2^-24 -> even (0).
  EXPECT_EQ(to_float16(tiny / 2).bits, 0x0000);
  EXPECT_EQ(to_float16(std::nextafter(tiny / 2, 1.0f)).bits, 0x0001);
  EXPECT_EQ(to_float16(1.5f * tiny).bits, 0x0002);     // tie between 1 and 2 -> 2
  EXPECT_EQ(to_float16(2.5f * tiny).bits, 0x0002);     // tie between 2 and 3 -> 2
  EXPECT_EQ(to_float16(1023.5f * tiny).bits, 0x0400);  // tie between 0x3ff and 0x400
  EXPECT_EQ(to_float16(-tiny).bits, 0x8001);
  // Far below the subnormals (including binary32 subnormals) -> signed zero.
  EXPECT_EQ(to_float16(std::numeric_limits<float>::denorm_min()).bits, 0x0000);
  EXPECT_EQ(to_float16(-std::numeric_limits<float>::denorm_min()).bits, 0x8000);
  EXPECT_EQ(to_float16(1e-30f).bits, 0x0000);
  // And back: the subnormals decode exactly.
  EXPECT_EQ(to_float(float16{0x0001}), tiny);
  EXPECT_EQ(to_float(float16{0x8200}), -512 * tiny);
}

TEST(Float16, OverflowGivesInfinity) {
  EXPECT_EQ(to_float16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(to_float16(std::nextafter(65520.0f, 0.0f)).bits, 0x7bff);
  EXPECT_EQ(to_float16(65520.0f).bits, 0x7c00);  // the tie rounds to even = infinity
  EXPECT_EQ(to_float16(65536.0f).bits, 0x7c00);
  EXPECT_EQ(to_float16(1e10f).bits, 0x7c00);
  EXPECT_EQ(to_float16(-1e10f).bits, 0xfc00);
  EXPECT_EQ(to_float16(std::numeric_limits<float>::max()).bits, 0x7c00);
  EXPECT_EQ(to_float16(std::numeric_limits<float>::infinity()).bits, 0x7c00);
  EXPECT_EQ(to_float16(-std::numeric_limits<float>::infinity()).bits, 0xfc00);
  EXPECT_TRUE(std::isinf(to_float(float16{0x7c00})));
  EXPECT_LT(to_float(float16{0xfc00}), 0.0f);
}

TEST(Float16, SignedZeroAndNaN) {
  EXPECT_EQ(to_float16(0.0f).bits, 0x0000);
  EXPECT_EQ(to_float16(-0.0f).bits, 0x8000);
  EXPECT_TRUE(std::signbit(to_float(float16{0x8000})));
  EXPECT_EQ(to_float(float16{0x8000}), 0.0f);
  // Every NaN payload stays NaN, including payloads living only in the low 13 bits that a
  // plain truncation would turn into infinity.
  for (std::uint32_t u : {0x7fc00000u, 0x7f800001u, 0x7f801fffu, 0xff800001u, 0x7fffffffu}) {
    EXPECT_TRUE(half_is_nan(to_float16(float_of(u)).bits)) << std::hex << u;
  }
}

// ---------------------------------------------------------------- bfloat16

TEST(Bfloat16, DecodesAsTheUpperHalfOfABinary32) {
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float f = to_float(bfloat16{bits});
    if (bf16_is_nan(bits)) {
      EXPECT_TRUE(std::isnan(f));
      EXPECT_TRUE(bf16_is_nan(to_bfloat16(f).bits)) << std::hex << b;
      continue;
    }
    ASSERT_EQ(bits_of(f), static_cast<std::uint32_t>(bits) << 16) << std::hex << b;
    ASSERT_EQ(to_bfloat16(f).bits, bits) << "round trip " << std::hex << b;
  }
}

TEST(Bfloat16, MidpointsRoundToEvenAndNeighboursToTheNearer) {
  for (std::uint32_t h = 0; h < 0x7f7f; ++h) {
    const double lo = bf16_value(static_cast<std::uint16_t>(h));
    const double hi = bf16_value(static_cast<std::uint16_t>(h + 1));
    const float mid = static_cast<float>((lo + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (lo + hi) / 2);
    const std::uint32_t even = (h & 1) ? h + 1 : h;
    for (float sign : {1.0f, -1.0f}) {
      const std::uint32_t s = sign < 0 ? 0x8000 : 0;
      ASSERT_EQ(to_bfloat16(sign * mid).bits, s | even) << std::hex << h;
      ASSERT_EQ(
          to_bfloat16(sign * std::nextafter(mid, std::numeric_limits<float>::infinity())).bits,
          s | (h + 1))
          << std::hex << h;
      ASSERT_EQ(to_bfloat16(sign * std::nextafter(mid, 0.0f)).bits, s | h) << std::hex << h;
    }
  }
}

TEST(Bfloat16, SampledFloatsMatchTheNearestValueSearch) {
  std::mt19937 rng(777);
  auto check = [](std::uint32_t u) {
    const float f = float_of(u);
    const bfloat16 got = to_bfloat16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(bf16_is_nan(got.bits)) << std::hex << u;
      return;
    }
    EXPECT_EQ(got.bits, nearest_bf16(static_cast<double>(f))) << std::hex << u << " " << f;
  };
  for (std::uint64_t u = 0; u <= 0xffffffffull; u += 16411)
    check(static_cast<std::uint32_t>(u));
  for (int i = 0; i < 100000; ++i)
    check(rng());
}

TEST(Bfloat16, OverflowSignedZeroAndNaN) {
  const float max_bf16 = to_float(bfloat16{0x7f7f});
  EXPECT_EQ(to_bfloat16(max_bf16).bits, 0x7f7f);
  EXPECT_EQ(to_bfloat16(std::numeric_limits<float>::max()).bits, 0x7f80);  // rounds up to inf
  EXPECT_EQ(to_bfloat16(-std::numeric_limits<float>::max()).bits, 0xff80);
  EXPECT_EQ(to_bfloat16(std::numeric_limits<float>::infinity()).bits, 0x7f80);
  EXPECT_EQ(to_bfloat16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_bfloat16(0.0f).bits, 0x0000);
  // bfloat16 has binary32's exponent range, so binary32 subnormals round like normals.
  EXPECT_EQ(to_bfloat16(std::numeric_limits<float>::denorm_min()).bits,
            0x0000);  // tie-free: below half
  EXPECT_EQ(to_bfloat16(float_of(0x00010000u)).bits, 0x0001);
  EXPECT_EQ(to_bfloat16(float_of(0x00018000u)).bits, 0x0002);  // tie between 1 and 2 -> 2
  // NaN payloads only in the dropped low half must not become infinity.
  for (std::uint32_t u : {0x7f800001u, 0x7f80ffffu, 0xff800001u, 0x7fc00000u}) {
    const auto b = to_bfloat16(float_of(u)).bits;
    EXPECT_TRUE(bf16_is_nan(b)) << std::hex << u << " -> " << b;
    EXPECT_EQ(b & 0x8000, (u >> 16) & 0x8000) << "NaN keeps its sign";
  }
}

TEST(Bfloat16, RoundsOrdinaryValuesToNearest) {
  // 1 + 2^-8 is the midpoint of 1 and 1 + 2^-7: even (1). 1 + 3*2^-8: midpoint of 1+2^-7 (odd)
  // and 1+2^-6 (even): up.
  EXPECT_EQ(to_float(to_bfloat16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(to_float(to_bfloat16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(to_float(to_bfloat16(3.14159265f)), 3.140625f);
  EXPECT_EQ(to_float(to_bfloat16(-100.7f)), -100.5f);
}

}  // namespace
}  // namespace kvactor
