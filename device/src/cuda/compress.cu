// 1-bit and 2-bit gradient compression on the device: the bits, residuals and decoded values of
// device/src/cpu/compression.cpp (whose header documents the layout and the rules).
//
// One thread per element, so loads and stores are coalesced; a word's bits are gathered across
// the lanes that hold its elements (2-bit: 16 lanes, OR-reduced with shuffles; 1-bit: a warp
// ballot, reordered to the layout's bit order). The loop bound is rounded up to whole warps so
// that every lane takes part in each shuffle; lanes past n contribute no bits, which gives the
// zero padding of the last word. The float operations are the CPU's, in its order: an add,
// compares and one subtract per element (no multiply, nothing to contract), and this file is
// compiled without flush-to-zero, so subnormals give the same bits.
#include "device_math.cuh"
#include "launch.hpp"

namespace kvactor::cudak {

namespace {

constexpr unsigned full_mask = 0xffffffffu;

// Bit position of the low bit of element j's pair within its little-endian word.
__device__ __forceinline__ unsigned pair_shift(unsigned j) {
  return 8u * (j / 4u) + 6u - 2u * (j % 4u);
}

__global__ void __launch_bounds__(block_threads)
    quantize_2bit_kernel(const float* grad, float* residual, std::uint32_t* out, std::size_t n,
                         std::size_t padded, float t) {
  const float nt = -1.0f * t;
  const std::uint32_t tb = __float_as_uint(t), ntb = __float_as_uint(nt);
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < padded; i += stride) {
    std::uint32_t bits = 0;
    if (i < n) {
      const float x = residual[i] + grad[i];
      const bool pos = x >= t;
      const bool neg = !pos && x <= nt;
      const unsigned s = pair_shift(static_cast<unsigned>(i % 16));
      bits = pos ? (3u << s) : (neg ? (2u << s) : 0u);
      // x - 0.0f == x for every x (NaN and -0 included): "unchanged" for code 00.
      residual[i] = x - __uint_as_float(pos ? tb : (neg ? ntb : 0u));
    }
    bits |= __shfl_xor_sync(full_mask, bits, 8);
    bits |= __shfl_xor_sync(full_mask, bits, 4);
    bits |= __shfl_xor_sync(full_mask, bits, 2);
    bits |= __shfl_xor_sync(full_mask, bits, 1);
    if (i % 16 == 0 && i < n) out[i / 16] = bits;
  }
}

__global__ void __launch_bounds__(block_threads)
    quantize_1bit_kernel(const float* grad, float* residual, std::uint32_t* out, std::size_t n,
                         std::size_t padded, float t) {
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < padded; i += stride) {
    bool one = false;
    if (i < n) {
      const float x = residual[i] + grad[i];
      one = x > t;
      residual[i] = x - (one ? 1.0f : -1.0f);
    }
    // Lane j holds element j of the word; the layout puts it at bit 8*(j/8) + 7 - j%8: reverse
    // all 32 bits, then the byte order.
    const std::uint32_t lanes = __ballot_sync(full_mask, one);
    if (i % 32 == 0 && i < n) out[i / 32] = __byte_perm(__brev(lanes), 0u, 0x0123u);
  }
}

template <bool Add>
__global__ void __launch_bounds__(block_threads)
    dequantize_2bit_kernel(const std::uint32_t* in, float* out, std::size_t n, float t) {
  const float nt = -1.0f * t;
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride) {
    const std::uint32_t w = in[i / 16];
    const unsigned s = pair_shift(static_cast<unsigned>(i % 16));
    const bool hi = (w >> (s + 1u)) & 1u, lo = (w >> s) & 1u;
    const float v = hi ? (lo ? t : nt) : __uint_as_float(0u);  // 11: t, 10: -t, 0x: +0
    if constexpr (Add)
      out[i] = out[i] + v;
    else
      out[i] = v;
  }
}

template <bool Add>
__global__ void __launch_bounds__(block_threads)
    dequantize_1bit_kernel(const std::uint32_t* in, float* out, std::size_t n) {
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride) {
    const unsigned j = static_cast<unsigned>(i % 32);
    const bool one = (in[i / 32] >> (8u * (j / 8u) + 7u - j % 8u)) & 1u;
    const float v = one ? 1.0f : -1.0f;
    if constexpr (Add)
      out[i] = out[i] + v;
    else
      out[i] = v;
  }
}

std::size_t round_up_warp(std::size_t n) {
  return (n + 31) / 32 * 32;
}

}  // namespace

cudaError_t quantize_2bit(const launch& l, const float* grad, float* residual, std::uint32_t* out,
                          std::size_t n, float threshold) {
  const std::size_t padded = round_up_warp(n);
  quantize_2bit_kernel<<<grid_for(l, quantize_2bit_kernel, padded), block_threads, 0, l.stream>>>(
      grad, residual, out, n, padded, threshold);
  return cudaGetLastError();
}

cudaError_t quantize_1bit(const launch& l, const float* grad, float* residual, std::uint32_t* out,
                          std::size_t n, float threshold) {
  const std::size_t padded = round_up_warp(n);
  quantize_1bit_kernel<<<grid_for(l, quantize_1bit_kernel, padded), block_threads, 0, l.stream>>>(
      grad, residual, out, n, padded, threshold);
  return cudaGetLastError();
}

cudaError_t dequantize_2bit(const launch& l, const std::uint32_t* in, float* out, std::size_t n,
                            float threshold, bool add) {
  if (add)
    dequantize_2bit_kernel<true>
        <<<grid_for(l, dequantize_2bit_kernel<true>, n), block_threads, 0, l.stream>>>(in, out, n,
                                                                                       threshold);
  else
    dequantize_2bit_kernel<false>
        <<<grid_for(l, dequantize_2bit_kernel<false>, n), block_threads, 0, l.stream>>>(in, out, n,
                                                                                        threshold);
  return cudaGetLastError();
}

cudaError_t dequantize_1bit(const launch& l, const std::uint32_t* in, float* out, std::size_t n,
                            bool add) {
  if (add)
    dequantize_1bit_kernel<true>
        <<<grid_for(l, dequantize_1bit_kernel<true>, n), block_threads, 0, l.stream>>>(in, out, n);
  else
    dequantize_1bit_kernel<false>
        <<<grid_for(l, dequantize_1bit_kernel<false>, n), block_threads, 0, l.stream>>>(in, out, n);
  return cudaGetLastError();
}

}  // namespace kvactor::cudak
