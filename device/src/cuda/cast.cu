// fill and cast on the device. cast follows kernels::cast (device/src/cpu/kernels.cpp) bit for
// bit: 16-bit floats widen exactly; narrowing to a 16-bit float rounds once to nearest (from
// double and integers through float rounded "to odd", so the second rounding is correct);
// floating -> integer truncates toward zero and saturates, NaN -> 0; integer -> integer
// saturates.
#include <cfloat>
#include <type_traits>

#include "device_math.cuh"
#include "launch.hpp"

namespace kvactor::cudak {

namespace {

template <class U>
__global__ void __launch_bounds__(block_threads) fill_kernel(U* dst, U value, std::size_t n) {
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride)
    dst[i] = value;
}

template <class U>
cudaError_t launch_fill(const launch& l, void* dst, std::uint64_t bits, std::size_t n) {
  fill_kernel<U><<<grid_for(l, fill_kernel<U>, n), block_threads, 0, l.stream>>>(
      static_cast<U*>(dst), static_cast<U>(bits), n);
  return cudaGetLastError();
}

// std::numeric_limits' functions are host functions: the integer bounds as constants.
template <class T>
struct bounds;
template <>
struct bounds<std::int32_t> {
  static constexpr std::int32_t min = -2147483647 - 1, max = 2147483647;
};
template <>
struct bounds<std::int64_t> {
  static constexpr std::int64_t min = -9223372036854775807LL - 1, max = 9223372036854775807LL;
};
template <>
struct bounds<std::uint8_t> {
  static constexpr std::uint8_t min = 0, max = 255;
};

template <class T>
constexpr bool is_16bit_v = std::is_same_v<T, h16> || std::is_same_v<T, b16>;

__device__ float to_float_odd(double d) {
  if (isnan(d) || isinf(d)) return static_cast<float>(d);
  constexpr double max = FLT_MAX;
  if (d > max) return FLT_MAX;
  if (d < -max) return -FLT_MAX;
  float f = static_cast<float>(d);
  if (static_cast<double>(f) == d) return f;
  if (fabs(static_cast<double>(f)) > fabs(d)) f = nextafterf(f, 0.0f);
  return __uint_as_float(__float_as_uint(f) | 1u);
}

__device__ float to_float_odd(std::int64_t x) {
  const bool neg = x < 0;
  std::uint64_t a = neg ? 0 - static_cast<std::uint64_t>(x) : static_cast<std::uint64_t>(x);
  int shift = 0;
  while ((a >> shift) >= (std::uint64_t{1} << 24))
    ++shift;
  if (shift) {
    const bool inexact = (a & ((std::uint64_t{1} << shift) - 1)) != 0;
    a = (a >> shift) | (inexact ? 1u : 0u);
  }
  const float f = ldexpf(static_cast<float>(a), shift);  // exact: a < 2^24
  return neg ? -f : f;
}

template <class T>
__device__ __forceinline__ float widen16(T x) {
  if constexpr (std::is_same_v<T, h16>)
    return h16_to_float(x.bits);
  else
    return b16_to_float(x.bits);
}

template <class To>
__device__ __forceinline__ To narrow16(float f) {
  if constexpr (std::is_same_v<To, h16>)
    return h16{float_to_h16(f)};
  else
    return b16{float_to_b16(f)};
}

template <class To, class From>
__device__ To convert(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (is_16bit_v<From>) {
    return convert<To>(widen16(x));
  } else if constexpr (is_16bit_v<To>) {
    float f;
    if constexpr (std::is_same_v<From, float>)
      f = x;
    else if constexpr (std::is_same_v<From, double>)
      f = to_float_odd(x);
    else
      f = to_float_odd(static_cast<std::int64_t>(x));
    return narrow16<To>(f);
  } else if constexpr (std::is_floating_point_v<To>) {
    return static_cast<To>(x);
  } else if constexpr (std::is_floating_point_v<From>) {
    if (isnan(x)) return To{0};
    const double v = x;
    constexpr double lo = static_cast<double>(bounds<To>::min);
    constexpr double hi = static_cast<double>(bounds<To>::max);
    if (v <= lo) return bounds<To>::min;
    if (v >= hi) return bounds<To>::max;
    return static_cast<To>(v);
  } else {
    const std::int64_t v = x;
    constexpr std::int64_t lo = bounds<To>::min;
    constexpr std::int64_t hi = bounds<To>::max;
    return static_cast<To>(v < lo ? lo : v > hi ? hi : v);
  }
}

template <class To, class From>
__global__ void __launch_bounds__(block_threads)
    cast_kernel(const From* src, To* dst, std::size_t n) {
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride)
    dst[i] = convert<To>(src[i]);
}

template <class From, class To>
cudaError_t launch_cast(const launch& l, const void* src, void* dst, std::size_t n) {
  cast_kernel<To, From><<<grid_for(l, cast_kernel<To, From>, n), block_threads, 0, l.stream>>>(
      static_cast<const From*>(src), static_cast<To*>(dst), n);
  return cudaGetLastError();
}

template <class From>
cudaError_t cast_from(const launch& l, const void* src, dtype to, void* dst, std::size_t n) {
  switch (to) {
    case dtype::float32:
      return launch_cast<From, float>(l, src, dst, n);
    case dtype::float16:
      return launch_cast<From, h16>(l, src, dst, n);
    case dtype::bfloat16:
      return launch_cast<From, b16>(l, src, dst, n);
    case dtype::float64:
      return launch_cast<From, double>(l, src, dst, n);
    case dtype::int32:
      return launch_cast<From, std::int32_t>(l, src, dst, n);
    case dtype::int64:
      return launch_cast<From, std::int64_t>(l, src, dst, n);
    case dtype::uint8:
      return launch_cast<From, std::uint8_t>(l, src, dst, n);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t fill(const launch& l, void* dst, std::uint64_t bits, std::size_t width, std::size_t n) {
  switch (width) {
    case 1:
      return launch_fill<std::uint8_t>(l, dst, bits, n);
    case 2:
      return launch_fill<std::uint16_t>(l, dst, bits, n);
    case 4:
      return launch_fill<std::uint32_t>(l, dst, bits, n);
    case 8:
      return launch_fill<std::uint64_t>(l, dst, bits, n);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t cast(const launch& l, dtype from, const void* src, dtype to, void* dst, std::size_t n) {
  switch (from) {
    case dtype::float32:
      return cast_from<float>(l, src, to, dst, n);
    case dtype::float16:
      return cast_from<h16>(l, src, to, dst, n);
    case dtype::bfloat16:
      return cast_from<b16>(l, src, to, dst, n);
    case dtype::float64:
      return cast_from<double>(l, src, to, dst, n);
    case dtype::int32:
      return cast_from<std::int32_t>(l, src, to, dst, n);
    case dtype::int64:
      return cast_from<std::int64_t>(l, src, to, dst, n);
    case dtype::uint8:
      return cast_from<std::uint8_t>(l, src, to, dst, n);
  }
  return cudaErrorInvalidValue;
}

}  // namespace kvactor::cudak
