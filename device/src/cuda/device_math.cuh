// Private to the .cu files: device-side storage types and the conversions of the CPU kernels,
// bit for bit (core/src/dtype.cpp, device/src/cpu/arith.hpp, device/src/cpu/kernels.cpp).
#pragma once

#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

namespace kvactor::cudak {

// Storage types as the CPU lays them out (kvactor::float16 / bfloat16 are 16 bits of storage).
struct h16 {
  std::uint16_t bits;
};
struct b16 {
  std::uint16_t bits;
};

// binary16 -> binary32: exact. The hardware conversion agrees with the CPU's except for NaNs,
// whose payload the CPU keeps (sign | exponent all ones | mantissa << 13).
__device__ __forceinline__ float h16_to_float(std::uint16_t b) {
  if ((b & 0x7fffu) > 0x7c00u)
    return __uint_as_float((static_cast<std::uint32_t>(b & 0x8000u) << 16) | 0x7f800000u |
                           (static_cast<std::uint32_t>(b & 0x3ffu) << 13));
  return __half2float(__ushort_as_half(b));
}

// binary32 -> binary16, round to nearest even, overflow to infinity (IEEE, as the CPU); the CPU
// turns a NaN into sign | 0x7e00.
__device__ __forceinline__ std::uint16_t float_to_h16(float f) {
  if (f != f) return static_cast<std::uint16_t>(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7e00u);
  return __half_as_ushort(__float2half_rn(f));
}

__device__ __forceinline__ float b16_to_float(std::uint16_t b) {
  return __uint_as_float(static_cast<std::uint32_t>(b) << 16);
}

// The CPU's to_bfloat16: NaN stays quiet with its payload's top bits, else round to even.
__device__ __forceinline__ std::uint16_t float_to_b16(float f) {
  std::uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

/// arith<T> of device/src/cpu/arith.hpp: the arithmetic type and the conversions in and out.
template <class T>
struct darith {
  using type = T;
  __device__ __forceinline__ static T in(T x) { return x; }
  __device__ __forceinline__ static T out(T x) { return x; }
};
template <>
struct darith<h16> {
  using type = float;
  __device__ __forceinline__ static float in(h16 x) { return h16_to_float(x.bits); }
  __device__ __forceinline__ static h16 out(float x) { return h16{float_to_h16(x)}; }
};
template <>
struct darith<b16> {
  using type = float;
  __device__ __forceinline__ static float in(b16 x) { return b16_to_float(x.bits); }
  __device__ __forceinline__ static b16 out(float x) { return b16{float_to_b16(x)}; }
};
template <>
struct darith<std::int32_t> {
  using type = std::uint32_t;
  __device__ __forceinline__ static std::uint32_t in(std::int32_t x) {
    return static_cast<std::uint32_t>(x);
  }
  __device__ __forceinline__ static std::int32_t out(std::uint32_t x) {
    return static_cast<std::int32_t>(x);
  }
};
template <>
struct darith<std::int64_t> {
  using type = std::uint64_t;
  __device__ __forceinline__ static std::uint64_t in(std::int64_t x) {
    return static_cast<std::uint64_t>(x);
  }
  __device__ __forceinline__ static std::int64_t out(std::uint64_t x) {
    return static_cast<std::int64_t>(x);
  }
};
template <>
struct darith<std::uint8_t> {
  using type = std::uint32_t;
  __device__ __forceinline__ static std::uint32_t in(std::uint8_t x) { return x; }
  __device__ __forceinline__ static std::uint8_t out(std::uint32_t x) {
    return static_cast<std::uint8_t>(x);
  }
};

/// Grid-stride loop helpers.
__device__ __forceinline__ std::size_t thread_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::size_t grid_stride() {
  return static_cast<std::size_t>(gridDim.x) * blockDim.x;
}

}  // namespace kvactor::cudak
