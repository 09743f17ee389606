#include "kvactor/detail/kernels.hpp"

#include "arith.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace kvactor::kernels {

namespace {

using detail::arith;

// K known at compile time: one pass, K loads and one store per element.
template <class T, std::size_t K>
void sum_fixed(T* dst, const void* const* srcs, std::size_t b, std::size_t e) noexcept {
  using A = arith<T>;
  const T* s[K];
  for (std::size_t j = 0; j < K; ++j)
    s[j] = static_cast<const T*>(srcs[j]);
  for (std::size_t i = b; i < e; ++i) {
    typename A::type acc = A::in(s[0][i]);
    for (std::size_t j = 1; j < K; ++j)
      acc += A::in(s[j][i]);
    dst[i] = A::out(acc);
  }
}

// dst[i] = dst[i] + s1[i] + ... + sK[i].
template <class T, std::size_t K>
void add_fixed(T* dst, const void* const* srcs, std::size_t b, std::size_t e) noexcept {
  using A = arith<T>;
  const T* s[K];
  for (std::size_t j = 0; j < K; ++j)
    s[j] = static_cast<const T*>(srcs[j]);
  for (std::size_t i = b; i < e; ++i) {
    typename A::type acc = A::in(dst[i]);
    for (std::size_t j = 0; j < K; ++j)
      acc += A::in(s[j][i]);
    dst[i] = A::out(acc);
  }
}

// More than eight sources: accumulate a block of elements in the arithmetic type over all
// sources in order, then round and store once. Every source is read before dst is written, so
// dst may be any source, and 16-bit sums are rounded once, as with fewer sources.
template <class T>
void sum_many(T* dst, const void* const* srcs, std::size_t k, std::size_t b,
              std::size_t e) noexcept {
  using A = arith<T>;
  constexpr std::size_t block = 256;
  typename A::type acc[block];
  for (std::size_t i0 = b; i0 < e; i0 += block) {
    const std::size_t n = std::min(block, e - i0);
    const T* s0 = static_cast<const T*>(srcs[0]) + i0;
    for (std::size_t i = 0; i < n; ++i)
      acc[i] = A::in(s0[i]);
    for (std::size_t j = 1; j < k; ++j) {
      const T* sj = static_cast<const T*>(srcs[j]) + i0;
      for (std::size_t i = 0; i < n; ++i)
        acc[i] += A::in(sj[i]);
    }
    for (std::size_t i = 0; i < n; ++i)
      dst[i0 + i] = A::out(acc[i]);
  }
}

template <class T>
void sum_typed(void* dst_v, const void* const* srcs, std::size_t k, std::size_t b,
               std::size_t e) noexcept {
  T* dst = static_cast<T*>(dst_v);
  switch (k) {
    case 1:
      sum_fixed<T, 1>(dst, srcs, b, e);
      break;
    case 2:
      sum_fixed<T, 2>(dst, srcs, b, e);
      break;
    case 3:
      sum_fixed<T, 3>(dst, srcs, b, e);
      break;
    case 4:
      sum_fixed<T, 4>(dst, srcs, b, e);
      break;
    case 5:
      sum_fixed<T, 5>(dst, srcs, b, e);
      break;
    case 6:
      sum_fixed<T, 6>(dst, srcs, b, e);
      break;
    case 7:
      sum_fixed<T, 7>(dst, srcs, b, e);
      break;
    case 8:
      sum_fixed<T, 8>(dst, srcs, b, e);
      break;
    default:
      sum_many<T>(dst, srcs, k, b, e);
      break;
  }
}

template <class T>
constexpr bool is_16bit_v = std::is_same_v<T, float16> || std::is_same_v<T, bfloat16>;

// Rounding to float and then to a 16-bit float rounds twice and can miss the nearest 16-bit
// value (a value just above a 16-bit midpoint may first round onto it, and the tie then goes
// to even). Rounding to float "to odd" instead (truncate, then set the last bit when inexact)
// keeps that information: binary32 has more than 11 + 2 significand bits, so the second
// rounding is then correct.
float to_float_odd(double d) noexcept {
  if (std::isnan(d) || std::isinf(d)) return static_cast<float>(d);
  constexpr double max = std::numeric_limits<float>::max();
  // Beyond the float range: FLT_MAX (odd) still rounds to infinity in both 16-bit formats.
  if (d > max) return std::numeric_limits<float>::max();
  if (d < -max) return -std::numeric_limits<float>::max();
  float f = static_cast<float>(d);
  if (static_cast<double>(f) == d) return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u |= 1u;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float to_float_odd(std::int64_t x) noexcept {
  const bool neg = x < 0;
  std::uint64_t a = neg ? 0 - static_cast<std::uint64_t>(x) : static_cast<std::uint64_t>(x);
  int shift = 0;
  while ((a >> shift) >= (std::uint64_t{1} << 24))
    ++shift;
  if (shift) {
    const bool inexact = (a & ((std::uint64_t{1} << shift) - 1)) != 0;
    a = (a >> shift) | (inexact ? 1u : 0u);
  }
  const float f = std::ldexp(static_cast<float>(a), shift);  // exact: a < 2^24
  return neg ? -f : f;
}

// x converted to To: 16-bit floats and binary32/64 rounded to nearest (each once), integers
// truncated toward zero and saturated, NaN -> 0 for integers.
template <class To, class From>
To convert(From x) noexcept {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (is_16bit_v<From>) {
    return convert<To>(to_float(x));  // exact widening
  } else if constexpr (is_16bit_v<To>) {
    float f;
    if constexpr (std::is_same_v<From, float>)
      f = x;
    else if constexpr (std::is_same_v<From, double>)
      f = to_float_odd(x);
    else
      f = to_float_odd(static_cast<std::int64_t>(x));
    if constexpr (std::is_same_v<To, float16>)
      return to_float16(f);
    else
      return to_bfloat16(f);
  } else if constexpr (std::is_floating_point_v<To>) {
    return static_cast<To>(x);  // one IEEE rounding, to nearest
  } else if constexpr (std::is_floating_point_v<From>) {
    // Saturate instead of the undefined behaviour of an out-of-range conversion.
    if (std::isnan(x)) return To{0};
    const double v = x;
    constexpr double lo = static_cast<double>(std::numeric_limits<To>::min());
    constexpr double hi = static_cast<double>(std::numeric_limits<To>::max());
    if (v <= lo) return std::numeric_limits<To>::min();
    if (v >= hi) return std::numeric_limits<To>::max();
    return static_cast<To>(v);
  } else {
    const std::int64_t v = x;
    constexpr std::int64_t lo = std::numeric_limits<To>::min();
    constexpr std::int64_t hi = std::numeric_limits<To>::max();
    return static_cast<To>(v < lo ? lo : v > hi ? hi : v);
  }
}

template <class T>
T from_double(double v) noexcept {
  return convert<T>(v);
}

template <class T>
double to_double(T v) noexcept {
  return convert<double>(v);
}

}  // namespace

void sum(dtype t, void* dst, const void* const* srcs, std::size_t k, std::size_t begin,
         std::size_t end) noexcept {
  if (k == 0 || begin >= end) return;
  visit_dtype(t, [&](auto tag) { sum_typed<decltype(tag)>(dst, srcs, k, begin, end); });
}

void accumulate(dtype t, void* dst, const void* src, std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const void* srcs[1] = {src};
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    add_fixed<T, 1>(static_cast<T*>(dst), srcs, begin, end);
  });
}

void copy(dtype t, void* dst, const void* src, std::size_t begin, std::size_t end) noexcept {
  if (begin >= end || dst == src) return;
  const std::size_t w = size_of(t);
  std::memmove(static_cast<char*>(dst) + begin * w, static_cast<const char*>(src) + begin * w,
               (end - begin) * w);
}

void fill(dtype t, void* dst, double value, std::size_t begin, std::size_t end) noexcept {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    const T v = from_double<T>(value);
    T* d = static_cast<T*>(dst);
    for (std::size_t i = begin; i < end; ++i)
      d[i] = v;
  });
}

void cast(dtype from, const void* src, dtype to, void* dst, std::size_t begin,
          std::size_t end) noexcept {
  if (from == to) {
    copy(from, dst, src, begin, end);
    return;
  }
  visit_dtype(from, [&](auto ftag) {
    using F = decltype(ftag);
    const F* s = static_cast<const F*>(src);
    visit_dtype(to, [&](auto ttag) {
      using T = decltype(ttag);
      T* d = static_cast<T*>(dst);
      for (std::size_t i = begin; i < end; ++i)
        d[i] = convert<T>(s[i]);
    });
  });
}

double load(dtype t, const void* p, std::size_t i) noexcept {
  return visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    return to_double(static_cast<const T*>(p)[i]);
  });
}

void store(dtype t, void* p, std::size_t i, double value) noexcept {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    static_cast<T*>(p)[i] = from_double<T>(value);
  });
}

}  // namespace kvactor::kernels
