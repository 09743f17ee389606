// Reference conversions for the unit tests, written from the format definitions (IEEE 754
// binary16, bfloat16 = the upper half of a binary32) and not from the library's bit tricks:
// decoding by the value formula, encoding by searching for the nearest representable value.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kvactor/dtype.hpp"

namespace kvactor::unit {

/// The value of binary16 bits: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m when e == 0.
inline double half_value(std::uint16_t bits) {
  const bool neg = (bits & 0x8000u) != 0;
  const int e = (bits >> 10) & 0x1f;
  const int m = bits & 0x3ff;
  double v;
  if (e == 0x1f)
    v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (e == 0)
    v = std::ldexp(static_cast<double>(m), -24);
  else
    v = std::ldexp(static_cast<double>(1024 + m), e - 25);
  return neg ? -v : v;
}

/// The value of bfloat16 bits: a binary32 whose low 16 bits are zero.
inline double bf16_value(std::uint16_t bits) {
  const std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return static_cast<double>(f);
}

namespace detail {
// Nearest of the positive finite codes [0, max_code] to a >= 0 (a below the overflow
// threshold), ties to the even code.
template <class Value>
std::uint16_t nearest_code(double a, std::uint16_t max_code, Value value) {
  std::uint32_t lo = 0, hi = max_code;  // largest code with value <= a
  while (lo < hi) {
    const std::uint32_t mid = (lo + hi + 1) / 2;
    if (value(static_cast<std::uint16_t>(mid)) <= a)
      lo = mid;
    else
      hi = mid - 1;
  }
  if (lo == max_code) return max_code;
  const double below = value(static_cast<std::uint16_t>(lo));
  const double above = value(static_cast<std::uint16_t>(lo + 1));
  const double d_below = a - below, d_above = above - a;
  if (d_below < d_above) return static_cast<std::uint16_t>(lo);
  if (d_above < d_below) return static_cast<std::uint16_t>(lo + 1);
  return static_cast<std::uint16_t>((lo & 1u) ? lo + 1 : lo);
}
}  // namespace detail

/// Round-to-nearest-even binary16 encoding of x; NaN gives 0x7e00 (any NaN is accepted by
/// the tests that use this).
inline std::uint16_t nearest_half(double x) {
  if (std::isnan(x)) return 0x7e00;
  const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  // Largest finite 65504, next step 65536: the midpoint 65520 rounds to even, i.e. to inf.
  if (a >= 65520.0) return sign | 0x7c00;
  return sign | detail::nearest_code(a, 0x7bff, half_value);
}

/// Round-to-nearest-even bfloat16 encoding of x.
inline std::uint16_t nearest_bf16(double x) {
  if (std::isnan(x)) return 0x7fc0;
  const std::uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  // Largest finite (2 - 2^-7) * 2^127, next step 2^128: midpoint (2 - 2^-8) * 2^127.
  if (a >= std::ldexp(2.0 - std::ldexp(1.0, -8), 127)) return sign | 0x7f80;
  return sign | detail::nearest_code(a, 0x7f7f, bf16_value);
}

inline bool half_is_nan(std::uint16_t bits) {
  return (bits & 0x7c00) == 0x7c00 && (bits & 0x3ff);
}
inline bool bf16_is_nan(std::uint16_t bits) {
  return (bits & 0x7f80) == 0x7f80 && (bits & 0x7f);
}

/// The integer conversion the kernels promise: NaN -> 0, saturate, else truncate toward zero.
template <class I>
I saturating_int(double x) {
  if (std::isnan(x)) return 0;
  const double t = std::trunc(x);
  // Compare against the exact bounds as doubles; the max of int64 is not a double, 2^63 is.
  const double lo = static_cast<double>(std::numeric_limits<I>::min());
  if (t <= lo) return std::numeric_limits<I>::min();
  if (std::is_same_v<I, std::int64_t>) {
    if (t >= std::ldexp(1.0, 63)) return std::numeric_limits<I>::max();
  } else if (t >= static_cast<double>(std::numeric_limits<I>::max())) {
    return std::numeric_limits<I>::max();
  }
  return static_cast<I>(t);
}

/// Round-to-nearest binary32 of x, overflow included (written out rather than relying on an
/// out-of-range static_cast).
inline float nearest_float(double x) {
  constexpr double max = std::numeric_limits<float>::max();
  // Beyond FLT_MAX + half an ulp (2^128 - 2^103) the nearest is infinity.
  const double limit = std::ldexp(1.0, 128) - std::ldexp(1.0, 103);
  if (x >= limit) return std::numeric_limits<float>::infinity();
  if (x <= -limit) return -std::numeric_limits<float>::infinity();
  if (x > max) return static_cast<float>(max);
  if (x < -max) return static_cast<float>(-max);
  return static_cast<float>(x);  // in range: the hardware rounds to nearest even
}

/// A double stored as element type T by the documented conversion (nearest for floats,
/// NaN -> 0 / saturate / truncate for integers).
template <class T>
T ref_store(double x) {
  if constexpr (std::is_same_v<T, float16>) {
    return float16{nearest_half(x)};
  } else if constexpr (std::is_same_v<T, bfloat16>) {
    return bfloat16{nearest_bf16(x)};
  } else if constexpr (std::is_same_v<T, float>) {
    return nearest_float(x);
  } else if constexpr (std::is_same_v<T, double>) {
    return x;
  } else {
    return saturating_int<T>(x);
  }
}

/// The exact value of an element (exact for every type but int64 beyond 2^53).
template <class T>
double ref_value(T x) {
  if constexpr (std::is_same_v<T, float16>)
    return half_value(x.bits);
  else if constexpr (std::is_same_v<T, bfloat16>)
    return bf16_value(x.bits);
  else
    return static_cast<double>(x);
}

template <class T>
bool ref_is_nan(T x) {
  if constexpr (std::is_same_v<T, float16>)
    return half_is_nan(x.bits);
  else if constexpr (std::is_same_v<T, bfloat16>)
    return bf16_is_nan(x.bits);
  else if constexpr (std::is_floating_point_v<T>)
    return std::isnan(x);
  else
    return false;
}

/// Same bits, or both NaN.
template <class T>
bool same_element(T a, T b) {
  if (ref_is_nan(a) || ref_is_nan(b)) return ref_is_nan(a) && ref_is_nan(b);
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

/// What a double becomes when stored with dtype t, as a double.
inline double stored_value(dtype t, double v) {
  return visit_dtype(t, [v](auto tag) { return ref_value(ref_store<decltype(tag)>(v)); });
}

/// Units in the last place of a value of magnitude |x| in a format with `digits` significand
/// bits (normal range).
inline double ulp_at(double x, int digits) {
  int e = 0;
  std::frexp(x == 0 ? 1.0 : x, &e);
  return std::ldexp(1.0, e - digits);
}

}  // namespace kvactor::unit
