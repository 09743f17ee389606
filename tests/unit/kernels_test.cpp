// CPU kernels: k-way sum, accumulate, copy, fill, cast, load/store, for every dtype, against
// element-wise references (reference.hpp) that sum in the documented order.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kvactor/detail/kernels.hpp"
#include "reference.hpp"

namespace kvactor {
namespace {

using unit::ref_is_nan;
using unit::ref_store;
using unit::ref_value;
using unit::same_element;

// Random elements of type T: floats of magnitude below 16 (finite sums), integers over their
// whole range (so sums wrap). 16-bit floats are drawn as bit patterns.
template <class T>
T random_element(std::mt19937_64& rng) {
  const std::uint64_t r = rng();
  if constexpr (std::is_same_v<T, float16>) {
    // sign, exponent field 0..18 (subnormals up to 2^3), any mantissa
    return float16{static_cast<std::uint16_t>((r & 0x83ff) | (((r >> 16) % 19) << 10))};
  } else if constexpr (std::is_same_v<T, bfloat16>) {
    // sign, exponent 2^-20 .. 2^3, any mantissa
    return bfloat16{static_cast<std::uint16_t>((r & 0x807f) | ((107 + (r >> 16) % 24) << 7))};
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>((static_cast<double>(r >> 11) * 0x1p-53 - 0.5) * 32.0);
  } else {
    return static_cast<T>(r);
  }
}

template <class T>
std::vector<T> random_vector(std::size_t n, std::mt19937_64& rng) {
  std::vector<T> v(n);
  for (auto& x : v)
    x = random_element<T>(rng);
  return v;
}

// The documented sum: srcs[0] + srcs[1] + ... in that order; 16-bit floats in float, rounded
// once at the end; integers wrap.
template <class T>
T reference_sum(const std::vector<std::vector<T>>& srcs, std::size_t i) {
  if constexpr (std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>) {
    float acc = static_cast<float>(ref_value(srcs[0][i]));
    for (std::size_t j = 1; j < srcs.size(); ++j)
      acc += static_cast<float>(ref_value(srcs[j][i]));
    return ref_store<T>(acc);
  } else if constexpr (std::is_floating_point_v<T>) {
    T acc = srcs[0][i];
    for (std::size_t j = 1; j < srcs.size(); ++j)
      acc += srcs[j][i];
    return acc;
  } else {
    using U = std::make_unsigned_t<T>;
    U acc = static_cast<U>(srcs[0][i]);
    for (std::size_t j = 1; j < srcs.size(); ++j)
      acc = static_cast<U>(acc + static_cast<U>(srcs[j][i]));
    return static_cast<T>(acc);
  }
}

template <class T>
std::vector<const void*> pointers(const std::vector<std::vector<T>>& srcs) {
  std::vector<const void*> ps;
  for (const auto& s : srcs)
    ps.push_back(s.data());
  return ps;
}

template <class T>
::testing::AssertionResult same_elements(const std::vector<T>& got, const std::vector<T>& want,
                                         std::size_t begin = 0, std::size_t end = SIZE_MAX) {
  end = std::min(end, got.size());
  for (std::size_t i = begin; i < end; ++i)
    if (!same_element(got[i], want[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << ref_value(got[i]) << ", want " << ref_value(want[i]);
  return ::testing::AssertionSuccess();
}

// Runs body.template operator()<T>() for every element type, tagged with its dtype name.
template <class Body>
void for_every_dtype(Body&& body) {
  for (auto t : all_dtypes) {
    SCOPED_TRACE(to_string(t));
    visit_dtype(t, [&](auto tag) { body(tag, t); });
  }
}

// ---------------------------------------------------------------- sum

TEST(KernelSum, EveryDtypeEveryKEveryLength) {
  std::mt19937_64 rng(1);
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    for (std::size_t k = 1; k <= 12; ++k) {
      for (std::size_t n : {0, 1, 7, 16, 1023, 4097}) {
        SCOPED_TRACE("k=" + std::to_string(k) + " n=" + std::to_string(n));
        std::vector<std::vector<T>> srcs;
        for (std::size_t j = 0; j < k; ++j)
          srcs.push_back(random_vector<T>(n, rng));
        std::vector<T> dst = random_vector<T>(n, rng), want(n);
        for (std::size_t i = 0; i < n; ++i)
          want[i] = reference_sum(srcs, i);
        auto ps = pointers(srcs);
        kernels::sum(t, dst.data(), ps.data(), k, 0, n);
        ASSERT_TRUE(same_elements(dst, want));
      }
    }
  });
}

TEST(KernelSum, DestinationMayBeAnySource) {
  std::mt19937_64 rng(2);
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    for (std::size_t k : {1, 2, 5, 8, 9, 12}) {
      for (std::size_t alias = 0; alias < k; ++alias) {
        SCOPED_TRACE("k=" + std::to_string(k) + " dst=srcs[" + std::to_string(alias) + "]");
        constexpr std::size_t n = 257;
        std::vector<std::vector<T>> srcs;
        for (std::size_t j = 0; j < k; ++j)
          srcs.push_back(random_vector<T>(n, rng));
        std::vector<T> want(n);
        for (std::size_t i = 0; i < n; ++i)
          want[i] = reference_sum(srcs, i);
        auto ps = pointers(srcs);
        kernels::sum(t, srcs[alias].data(), ps.data(), k, 0, n);
        ASSERT_TRUE(same_elements(srcs[alias], want));
      }
    }
  });
}

// Sources 0..7 sum to the midpoint between two 16-bit values and source 8 adds a little more:
// summed in float and rounded once, the result rounds up; rounding the partial sum of the
// first eight (ties to even, down) and then adding the rest would give the lower value.
template <class T>
void check_single_rounding(double spacing) {
  std::vector<std::vector<T>> srcs(12, std::vector<T>(1, ref_store<T>(0.0)));
  srcs[0][0] = ref_store<T>(1.0);
  srcs[1][0] = ref_store<T>(spacing / 2);  // 1 + spacing/2: a tie, rounds down to 1
  srcs[8][0] = ref_store<T>(spacing / 4);
  std::vector<T> dst(1);
  auto ps = pointers(srcs);
  kernels::sum(dtype_of_v<T>, dst.data(), ps.data(), 12, 0, 1);
  EXPECT_EQ(ref_value(dst[0]), 1.0 + spacing);
  EXPECT_TRUE(same_element(dst[0], reference_sum(srcs, 0)));
}

TEST(KernelSum, SixteenBitSumsRoundOnceEvenBeyondEightSources) {
  check_single_rounding<float16>(std::ldexp(1.0, -10));
  check_single_rounding<bfloat16>(std::ldexp(1.0, -7));
}

TEST(KernelSum, FloatOrderIsTheSourceOrder) {
  // 1e8 + 1 - 1e8 is 0 in float when summed left to right (1e8 + 1 == 1e8), 1 otherwise.
  std::vector<std::vector<float>> srcs{{1e8f}, {1.0f}, {-1e8f}};
  std::vector<float> dst(1);
  auto ps = pointers(srcs);
  kernels::sum(dtype::float32, dst.data(), ps.data(), 3, 0, 1);
  EXPECT_EQ(dst[0], 0.0f);
  std::vector<std::vector<float>> srcs2{{1e8f}, {-1e8f}, {1.0f}};
  auto ps2 = pointers(srcs2);
  kernels::sum(dtype::float32, dst.data(), ps2.data(), 3, 0, 1);
  EXPECT_EQ(dst[0], 1.0f);
  // With eleven sources: 1e8, then ten 1s, is still 1e8 in float, in order.
  std::vector<std::vector<float>> many(11, std::vector<float>{1.0f});
  many[0][0] = 1e8f;
  auto pm = pointers(many);
  kernels::sum(dtype::float32, dst.data(), pm.data(), 11, 0, 1);
  EXPECT_EQ(dst[0], 1e8f);
}

TEST(KernelSum, IntegersWrapAround) {
  constexpr auto i32max = std::numeric_limits<std::int32_t>::max();
  constexpr auto i32min = std::numeric_limits<std::int32_t>::min();
  std::vector<std::vector<std::int32_t>> a{{i32max, i32min, -1}, {1, -1, i32min}, {0, 0, 0}};
  std::vector<std::int32_t> out(3);
  auto pa = pointers(a);
  kernels::sum(dtype::int32, out.data(), pa.data(), 3, 0, 3);
  EXPECT_EQ(out, (std::vector<std::int32_t>{i32min, i32max, i32max}));

  constexpr auto i64max = std::numeric_limits<std::int64_t>::max();
  constexpr auto i64min = std::numeric_limits<std::int64_t>::min();
  std::vector<std::vector<std::int64_t>> b(10, std::vector<std::int64_t>{i64max, i64min});
  std::vector<std::int64_t> out64(2);
  auto pb = pointers(b);
  kernels::sum(dtype::int64, out64.data(), pb.data(), 10, 0, 2);
  // 10 * (2^63 - 1) mod 2^64 = -10 mod 2^64 + 10 * 2^63 mod 2^64 = -10 (10 * 2^63 = 0 mod 2^64)
  EXPECT_EQ(out64[0], -10);
  EXPECT_EQ(out64[1], 0);  // 10 * -2^63 = 0 mod 2^64

  std::vector<std::vector<std::uint8_t>> c{{200, 255}, {100, 1}};
  std::vector<std::uint8_t> out8(2);
  auto pc = pointers(c);
  kernels::sum(dtype::uint8, out8.data(), pc.data(), 2, 0, 2);
  EXPECT_EQ(out8, (std::vector<std::uint8_t>{44, 0}));
}

TEST(KernelSum, OnlyTheRangeIsWritten) {
  std::mt19937_64 rng(3);
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    for (std::size_t k : {1, 3, 10}) {
      constexpr std::size_t n = 100, b = 13, e = 71;
      std::vector<std::vector<T>> srcs;
      for (std::size_t j = 0; j < k; ++j)
        srcs.push_back(random_vector<T>(n, rng));
      const std::vector<T> before = random_vector<T>(n, rng);
      std::vector<T> dst = before, want = before;
      for (std::size_t i = b; i < e; ++i)
        want[i] = reference_sum(srcs, i);
      auto ps = pointers(srcs);
      kernels::sum(t, dst.data(), ps.data(), k, b, e);
      ASSERT_TRUE(same_elements(dst, want)) << "k=" << k;
      // Empty and inverted ranges write nothing.
      kernels::sum(t, dst.data(), ps.data(), k, 50, 50);
      kernels::sum(t, dst.data(), ps.data(), k, 60, 40);
      ASSERT_TRUE(same_elements(dst, want)) << "k=" << k;
    }
  });
}

// ---------------------------------------------------------------- accumulate, copy

TEST(KernelAccumulate, AddsInPlaceForEveryDtype) {
  std::mt19937_64 rng(4);
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    for (std::size_t n : {0, 1, 31, 1025}) {
      std::vector<std::vector<T>> pair{random_vector<T>(n, rng), random_vector<T>(n, rng)};
      std::vector<T> want(n);
      for (std::size_t i = 0; i < n; ++i)
        want[i] = reference_sum(pair, i);
      std::vector<T> dst = pair[0];
      kernels::accumulate(t, dst.data(), pair[1].data(), 0, n);
      ASSERT_TRUE(same_elements(dst, want)) << "n=" << n;
      // dst == src doubles.
      std::vector<std::vector<T>> twice{pair[1], pair[1]};
      for (std::size_t i = 0; i < n; ++i)
        want[i] = reference_sum(twice, i);
      kernels::accumulate(t, pair[1].data(), pair[1].data(), 0, n);
      ASSERT_TRUE(same_elements(pair[1], want)) << "n=" << n;
    }
    // Range only.
    std::vector<T> dst = random_vector<T>(40, rng), src = random_vector<T>(40, rng);
    std::vector<T> want = dst;
    std::vector<std::vector<T>> pair{dst, src};
    for (std::size_t i = 5; i < 9; ++i)
      want[i] = reference_sum(pair, i);
    kernels::accumulate(t, dst.data(), src.data(), 5, 9);
    ASSERT_TRUE(same_elements(dst, want));
  });
}

TEST(KernelAccumulate, IntegersWrap) {
  std::int32_t d = std::numeric_limits<std::int32_t>::max();
  const std::int32_t s = 2;
  kernels::accumulate(dtype::int32, &d, &s, 0, 1);
  EXPECT_EQ(d, std::numeric_limits<std::int32_t>::min() + 1);
  std::int64_t d64 = std::numeric_limits<std::int64_t>::min();
  const std::int64_t s64 = -1;
  kernels::accumulate(dtype::int64, &d64, &s64, 0, 1);
  EXPECT_EQ(d64, std::numeric_limits<std::int64_t>::max());
}

TEST(KernelCopy, CopiesTheRangeOnly) {
  std::mt19937_64 rng(5);
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    const std::vector<T> src = random_vector<T>(64, rng), before = random_vector<T>(64, rng);
    std::vector<T> dst = before, want = before;
    for (std::size_t i = 10; i < 50; ++i)
      want[i] = src[i];
    kernels::copy(t, dst.data(), src.data(), 10, 50);
    ASSERT_TRUE(same_elements(dst, want));
    kernels::copy(t, dst.data(), src.data(), 50, 10);  // inverted: nothing
    kernels::copy(t, dst.data(), dst.data(), 0, 64);   // onto itself: nothing changes
    ASSERT_TRUE(same_elements(dst, want));
  });
}

// ---------------------------------------------------------------- fill, load, store

std::vector<double> conversion_probes() {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v{
      0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 0.1, 1e-30, -1e-30, 127.9, 128.0, 255.0, 255.5,
      256.0, -1.0, -129.0, 65504, 65519.9, 65520, 1e6, -1e6, 2147483647.0, 2147483647.9,
      2147483648.0, -2147483648.0, -2147483649.0, 1e300, -1e300, inf, -inf, std::ldexp(1.0, 63),
      -std::ldexp(1.0, 63), std::ldexp(1.0, 62) * 3,
      // Double-rounding traps: rounding to float first lands on a 16-bit
      // midpoint, and then ties-to-even goes the wrong way.
      1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -30),
      -(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -30)),
      1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30),
      std::ldexp(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40), -20),
      std::ldexp(1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40), 100),
      std::ldexp(1.0, 128) - std::ldexp(1.0, 103), std::ldexp(1.0, 128) - std::ldexp(1.0, 104)};
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<double> u(-70000.0, 70000.0);
  for (int i = 0; i < 6000; ++i)
    v.push_back(u(rng));
  std::uniform_real_distribution<double> small(-2.0, 2.0);
  for (int i = 0; i < 6000; ++i)
    v.push_back(small(rng));
  return v;
}

TEST(KernelFill, ConvertsAsDocumented) {
  const auto probes = conversion_probes();
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    const T sentinel = ref_store<T>(42.0);
    std::vector<T> dst(9, sentinel);
    for (double v : probes) {
      kernels::fill(t, dst.data(), v, 2, 7);
      const T want = ref_store<T>(v);
      for (std::size_t i = 0; i < dst.size(); ++i)
        ASSERT_TRUE(same_element(dst[i], i >= 2 && i < 7 ? want : sentinel))
            << "fill value " << v << " element " << i << " is " << ref_value(dst[i]);
    }
    std::vector<T> nan_dst(3);
    kernels::fill(t, nan_dst.data(), std::nan(""), 0, 3);
    if constexpr (std::is_integral_v<T>)
      EXPECT_EQ(nan_dst, std::vector<T>(3, T{0})) << "NaN becomes 0 for integers";
    else
      for (auto x : nan_dst)
        EXPECT_TRUE(ref_is_nan(x));
  });
}

TEST(KernelFill, IntegerSaturation) {
  std::int32_t i32[4];
  kernels::fill(dtype::int32, i32, 1e20, 0, 2);
  kernels::fill(dtype::int32, i32, -1e20, 2, 4);
  EXPECT_EQ(i32[0], std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(i32[3], std::numeric_limits<std::int32_t>::min());
  std::int64_t i64[2];
  kernels::fill(dtype::int64, i64, std::ldexp(1.0, 63), 0, 1);
  kernels::fill(dtype::int64, i64, -std::numeric_limits<double>::infinity(), 1, 2);
  EXPECT_EQ(i64[0], std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(i64[1], std::numeric_limits<std::int64_t>::min());
  std::uint8_t u8[3];
  kernels::fill(dtype::uint8, u8, 256, 0, 1);
  kernels::fill(dtype::uint8, u8, -0.9, 1, 2);
  kernels::fill(dtype::uint8, u8, 254.99, 2, 3);
  EXPECT_EQ(u8[0], 255);
  EXPECT_EQ(u8[1], 0);
  EXPECT_EQ(u8[2], 254);
}

TEST(KernelLoadStore, RoundTripForEveryDtype) {
  const auto probes = conversion_probes();
  for_every_dtype([&](auto tag, dtype t) {
    using T = decltype(tag);
    std::vector<T> buf(3, ref_store<T>(7.0));
    for (double v : probes) {
      kernels::store(t, buf.data(), 1, v);
      ASSERT_TRUE(same_element(buf[1], ref_store<T>(v))) << v;
      const double back = kernels::load(t, buf.data(), 1);
      const double want = ref_value(ref_store<T>(v));
      ASSERT_TRUE(back == want || (std::isnan(back) && std::isnan(want))) << v;
      ASSERT_EQ(std::signbit(back), std::signbit(want)) << v;
    }
    ASSERT_TRUE(same_element(buf[0], ref_store<T>(7.0)));
    ASSERT_TRUE(same_element(buf[2], ref_store<T>(7.0)));
  });
}

// ---------------------------------------------------------------- cast

template <class From, class To>
void check_cast(dtype from, dtype to, const std::vector<double>& probes) {
  std::vector<From> src;
  for (double v : probes)
    src.push_back(ref_store<From>(v));
  const std::size_t n = src.size();
  std::vector<To> dst(n + 2, ref_store<To>(9.0)), want(n + 2, ref_store<To>(9.0));
  // src[i] lands in dst[i] for i in [1, n): element 0 and the tail stay untouched.
  for (std::size_t i = 1; i < n; ++i) {
    if constexpr (std::is_integral_v<To>) {
      if constexpr (std::is_integral_v<From>) {
        // Integer to integer: saturate the exact value.
        const std::int64_t x = src[i];
        const std::int64_t lo = std::numeric_limits<To>::min(), hi = std::numeric_limits<To>::max();
        want[i] = static_cast<To>(x < lo ? lo : x > hi ? hi : x);
        continue;
      }
    }
    if constexpr (std::is_same_v<From, std::int64_t> && std::is_same_v<To, float>) {
      want[i] = static_cast<float>(src[i]);  // the hardware conversion rounds to nearest
      continue;
    }
    want[i] = ref_store<To>(ref_value(src[i]));
  }
  kernels::cast(from, src.data(), to, dst.data(), 1, n);
  ASSERT_TRUE(same_elements(dst, want));
}

TEST(KernelCast, EveryPair) {
  auto probes = conversion_probes();
  probes.resize(4000);
  // Integers that need more than 24 bits: converting them to float first and then to
  // bfloat16 / float16 rounds twice.
  for (double v : {std::ldexp(1.0, 30) + std::ldexp(1.0, 22) + 1,
                   -(std::ldexp(1.0, 30) + std::ldexp(1.0, 22) + 1),
                   std::ldexp(1.0, 40) + std::ldexp(1.0, 32) + 1, 16777217.0, 33554435.0})
    probes.push_back(v);
  probes.push_back(std::nan(""));
  for (auto from : all_dtypes) {
    for (auto to : all_dtypes) {
      SCOPED_TRACE(std::string(to_string(from)) + " -> " + to_string(to));
      visit_dtype(from, [&](auto f) {
        visit_dtype(to, [&](auto t) { check_cast<decltype(f), decltype(t)>(from, to, probes); });
      });
    }
  }
}

TEST(KernelCast, Int64BeyondDoublePrecision) {
  // Values a double cannot hold exactly: the conversion must still be the nearest.
  const std::vector<std::int64_t> src{
      (std::int64_t{1} << 60) + (std::int64_t{1} << 36) + 1, (std::int64_t{1} << 53) + 1,
      std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min() + 1};
  std::vector<float> f(src.size());
  kernels::cast(dtype::int64, src.data(), dtype::float32, f.data(), 0, src.size());
  for (std::size_t i = 0; i < src.size(); ++i)
    EXPECT_EQ(f[i], static_cast<float>(src[i])) << i;
  std::vector<double> d(src.size());
  kernels::cast(dtype::int64, src.data(), dtype::float64, d.data(), 0, src.size());
  for (std::size_t i = 0; i < src.size(); ++i)
    EXPECT_EQ(d[i], static_cast<double>(src[i])) << i;
  // Same dtype: bit-exact copy.
  std::vector<std::int64_t> same(src.size());
  kernels::cast(dtype::int64, src.data(), dtype::int64, same.data(), 0, src.size());
  EXPECT_EQ(same, src);
  // bfloat16: 2^60 + 2^52 + 1 is just above the midpoint of 2^60 and 2^60 + 2^53.
  const std::int64_t above_mid = (std::int64_t{1} << 60) + (std::int64_t{1} << 52) + 1;
  bfloat16 b{};
  kernels::cast(dtype::int64, &above_mid, dtype::bfloat16, &b, 0, 1);
  EXPECT_EQ(to_float(b), std::ldexp(1.0f, 60) + std::ldexp(1.0f, 53));
}

}  // namespace
}  // namespace kvactor
