// 1-bit and 2-bit gradient compression on the device: the bits, residuals and decoded values of
// device/src/cpu/compression.cpp (whose header documents the layout and the rules).
//
// Where the gradient, the residual and the output are 16-byte aligned (pooled buffers are),
// one thread takes a quad of 4 elements with 16-byte loads and stores, which an H200 needs to
// come near its copy bandwidth (one element per thread reached 0.71-0.80 of a device-to-device
// copy); a word's bits are gathered across the lanes that hold its quads (2-bit: a quad is one
// byte of the word, 4 lanes; 1-bit: half a byte, 8 lanes), OR-reduced with shuffles. Elsewhere
// one thread per element: 2-bit ORs 16 lanes, 1-bit takes a warp ballot reordered to the
// layout's bit order. The loop bounds are rounded up to whole warps so that every lane takes
// part in each shuffle; lanes past n contribute no bits, which gives the zero padding of the
// last word. The float operations are the CPU's, in its order: an add,
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

// The rules for one element, which every kernel below applies.

// 2-bit code of one element (bits 1..0: 11 for +t, 10 for -t, 00) and its new residual.
__device__ __forceinline__ unsigned code_2bit(float g, float& r, float t, float nt) {
  const float x = r + g;
  const bool pos = x >= t;
  const bool neg = !pos && x <= nt;
  // x - 0.0f == x for every x (NaN and -0 included): "unchanged" for code 00.
  r = x - (pos ? t : (neg ? nt : __uint_as_float(0u)));
  return pos ? 3u : (neg ? 2u : 0u);
}

// 1-bit code of one element (1 or 0) and its new residual.
__device__ __forceinline__ unsigned code_1bit(float g, float& r, float t) {
  const float x = r + g;
  const bool one = x > t;
  r = x - (one ? 1.0f : -1.0f);
  return one ? 1u : 0u;
}

// Decoded 2-bit value of element j (0..15) of word w: 11: t, 10: -t, 0x: +0.
__device__ __forceinline__ float decode_2bit(std::uint32_t w, unsigned j, float t, float nt) {
  const unsigned s = pair_shift(j);
  const bool hi = (w >> (s + 1u)) & 1u, lo = (w >> s) & 1u;
  return hi ? (lo ? t : nt) : __uint_as_float(0u);
}

// Decoded 1-bit value of element j (0..31) of word w, at bit 8*(j/8) + 7 - j%8.
__device__ __forceinline__ float decode_1bit(std::uint32_t w, unsigned j) {
  return (w >> (8u * (j / 8u) + 7u - j % 8u)) & 1u ? 1.0f : -1.0f;
}

// out = v, or with Add out += v.
template <bool Add>
__device__ __forceinline__ void put(float& out, float v) {
  if constexpr (Add)
    out = out + v;
  else
    out = v;
}

// The element-per-thread kernels (buffers that are not 16-byte aligned).

__global__ void __launch_bounds__(block_threads)
    quantize_2bit_kernel(const float* grad, float* residual, std::uint32_t* out, std::size_t n,
                         std::size_t padded, float t) {
  const float nt = -1.0f * t;
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < padded; i += stride) {
    std::uint32_t bits = 0;
    if (i < n)
      bits = code_2bit(grad[i], residual[i], t, nt) << pair_shift(static_cast<unsigned>(i % 16));
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
    const bool one = i < n && code_1bit(grad[i], residual[i], t) != 0u;
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
  for (std::size_t i = thread_index(); i < n; i += stride)
    put<Add>(out[i], decode_2bit(in[i / 16], static_cast<unsigned>(i % 16), t, nt));
}

template <bool Add>
__global__ void __launch_bounds__(block_threads)
    dequantize_1bit_kernel(const std::uint32_t* in, float* out, std::size_t n) {
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride)
    put<Add>(out[i], decode_1bit(in[i / 32], static_cast<unsigned>(i % 32)));
}

// The vector kernels: thread q holds quad q, elements 4q..4q+3 (n may end inside a quad: that
// quad is read element by element). `quads` = ceil(n / 4) rounded up to whole warps.

__device__ __forceinline__ bool whole_quad(std::size_t q, std::size_t n) {
  return 4 * q + 3 < n;
}

__global__ void __launch_bounds__(block_threads)
    quantize_2bit_vec_kernel(const float* grad, float* residual, std::uint32_t* out, std::size_t n,
                             std::size_t quads, float t) {
  const float nt = -1.0f * t;
  const std::size_t stride = grid_stride();
  for (std::size_t q = thread_index(); q < quads; q += stride) {
    std::uint32_t bits = 0;  // this quad's byte: element 4q in bits 7..6, 4q+3 in bits 1..0
    if (whole_quad(q, n)) {
      const float4 g = reinterpret_cast<const float4*>(grad)[q];
      float4 r = reinterpret_cast<const float4*>(residual)[q];
      bits = code_2bit(g.x, r.x, t, nt) << 6 | code_2bit(g.y, r.y, t, nt) << 4 |
             code_2bit(g.z, r.z, t, nt) << 2 | code_2bit(g.w, r.w, t, nt);
      reinterpret_cast<float4*>(residual)[q] = r;
    } else {
      for (std::size_t i = 4 * q; i < n && i < 4 * q + 4; ++i)
        bits |= code_2bit(grad[i], residual[i], t, nt) << (6u - 2u * unsigned(i % 4));
    }
    bits <<= 8u * unsigned(q % 4);  // quad j of a word is its byte j (little-endian)
    bits |= __shfl_xor_sync(full_mask, bits, 2);
    bits |= __shfl_xor_sync(full_mask, bits, 1);
    if (q % 4 == 0 && 4 * q < n) out[q / 4] = bits;
  }
}

__global__ void __launch_bounds__(block_threads)
    quantize_1bit_vec_kernel(const float* grad, float* residual, std::uint32_t* out, std::size_t n,
                             std::size_t quads, float t) {
  const std::size_t stride = grid_stride();
  for (std::size_t q = thread_index(); q < quads; q += stride) {
    std::uint32_t bits = 0;  // element 4q in bit 3, 4q+3 in bit 0
    if (whole_quad(q, n)) {
      const float4 g = reinterpret_cast<const float4*>(grad)[q];
      float4 r = reinterpret_cast<const float4*>(residual)[q];
      bits = code_1bit(g.x, r.x, t) << 3 | code_1bit(g.y, r.y, t) << 2 |
             code_1bit(g.z, r.z, t) << 1 | code_1bit(g.w, r.w, t);
      reinterpret_cast<float4*>(residual)[q] = r;
    } else {
      for (std::size_t i = 4 * q; i < n && i < 4 * q + 4; ++i)
        bits |= code_1bit(grad[i], residual[i], t) << (3u - unsigned(i % 4));
    }
    // Element j of a word sits at bit 8*(j/8) + 7 - j%8: quad j/4 of the word fills the high
    // half of byte j/8 when j/4 is even, the low half when odd.
    const unsigned k = unsigned(q % 8);
    bits <<= 8u * (k / 2u) + (k % 2u ? 0u : 4u);
    bits |= __shfl_xor_sync(full_mask, bits, 4);
    bits |= __shfl_xor_sync(full_mask, bits, 2);
    bits |= __shfl_xor_sync(full_mask, bits, 1);
    if (q % 8 == 0 && 4 * q < n) out[q / 8] = bits;
  }
}

// Element e of quad q decoded by Decode(word, index in word); with Add, out += value.
template <bool Add, unsigned PerWord, class Decode>
__device__ __forceinline__ void decode_quad(const std::uint32_t* in, float* out, std::size_t q,
                                            std::size_t n, Decode decode) {
  const std::uint32_t w = in[4 * q / PerWord];
  const unsigned j0 = unsigned(4 * q % PerWord);
  if (whole_quad(q, n)) {
    float4 v{decode(w, j0), decode(w, j0 + 1), decode(w, j0 + 2), decode(w, j0 + 3)};
    if constexpr (Add) {
      const float4 o = reinterpret_cast<const float4*>(out)[q];
      v = float4{o.x + v.x, o.y + v.y, o.z + v.z, o.w + v.w};
    }
    reinterpret_cast<float4*>(out)[q] = v;
    return;
  }
  for (std::size_t i = 4 * q; i < n && i < 4 * q + 4; ++i)
    put<Add>(out[i], decode(w, unsigned(i % PerWord)));
}

template <bool Add>
__global__ void __launch_bounds__(block_threads)
    dequantize_2bit_vec_kernel(const std::uint32_t* in, float* out, std::size_t n,
                               std::size_t quads, float t) {
  const float nt = -1.0f * t;
  const std::size_t stride = grid_stride();
  for (std::size_t q = thread_index(); q < quads; q += stride)
    decode_quad<Add, 16>(in, out, q, n,
                         [t, nt](std::uint32_t w, unsigned j) { return decode_2bit(w, j, t, nt); });
}

template <bool Add>
__global__ void __launch_bounds__(block_threads)
    dequantize_1bit_vec_kernel(const std::uint32_t* in, float* out, std::size_t n,
                               std::size_t quads) {
  const std::size_t stride = grid_stride();
  for (std::size_t q = thread_index(); q < quads; q += stride)
    decode_quad<Add, 32>(in, out, q, n,
                         [](std::uint32_t w, unsigned j) { return decode_1bit(w, j); });
}

std::size_t round_up_warp(std::size_t n) {
  return (n + 31) / 32 * 32;
}

// Quads of n elements, rounded up to whole warps.
std::size_t warp_quads(std::size_t n) {
  return round_up_warp((n + 3) / 4);
}

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

}  // namespace

cudaError_t quantize_2bit(const launch& l, const float* grad, float* residual, std::uint32_t* out,
                          std::size_t n, float threshold) {
  if (aligned16(grad) && aligned16(residual)) {
    const std::size_t quads = warp_quads(n);
    quantize_2bit_vec_kernel<<<grid_for(l, quantize_2bit_vec_kernel, quads), block_threads, 0,
                               l.stream>>>(grad, residual, out, n, quads, threshold);
    return cudaGetLastError();
  }
  const std::size_t padded = round_up_warp(n);
  quantize_2bit_kernel<<<grid_for(l, quantize_2bit_kernel, padded), block_threads, 0, l.stream>>>(
      grad, residual, out, n, padded, threshold);
  return cudaGetLastError();
}

cudaError_t quantize_1bit(const launch& l, const float* grad, float* residual, std::uint32_t* out,
                          std::size_t n, float threshold) {
  if (aligned16(grad) && aligned16(residual)) {
    const std::size_t quads = warp_quads(n);
    quantize_1bit_vec_kernel<<<grid_for(l, quantize_1bit_vec_kernel, quads), block_threads, 0,
                               l.stream>>>(grad, residual, out, n, quads, threshold);
    return cudaGetLastError();
  }
  const std::size_t padded = round_up_warp(n);
  quantize_1bit_kernel<<<grid_for(l, quantize_1bit_kernel, padded), block_threads, 0, l.stream>>>(
      grad, residual, out, n, padded, threshold);
  return cudaGetLastError();
}

namespace {

template <bool Add>
cudaError_t launch_dequantize_2bit(const launch& l, const std::uint32_t* in, float* out,
                                   std::size_t n, float t) {
  if (aligned16(out)) {
    const std::size_t quads = warp_quads(n);
    dequantize_2bit_vec_kernel<Add>
        <<<grid_for(l, dequantize_2bit_vec_kernel<Add>, quads), block_threads, 0, l.stream>>>(
            in, out, n, quads, t);
  } else {
    dequantize_2bit_kernel<Add>
        <<<grid_for(l, dequantize_2bit_kernel<Add>, n), block_threads, 0, l.stream>>>(in, out, n,
                                                                                      t);
  }
  return cudaGetLastError();
}

template <bool Add>
cudaError_t launch_dequantize_1bit(const launch& l, const std::uint32_t* in, float* out,
                                   std::size_t n) {
  if (aligned16(out)) {
    const std::size_t quads = warp_quads(n);
    dequantize_1bit_vec_kernel<Add>
        <<<grid_for(l, dequantize_1bit_vec_kernel<Add>, quads), block_threads, 0, l.stream>>>(
            in, out, n, quads);
  } else {
    dequantize_1bit_kernel<Add>
        <<<grid_for(l, dequantize_1bit_kernel<Add>, n), block_threads, 0, l.stream>>>(in, out, n);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t dequantize_2bit(const launch& l, const std::uint32_t* in, float* out, std::size_t n,
                            float threshold, bool add) {
  return add ? launch_dequantize_2bit<true>(l, in, out, n, threshold)
             : launch_dequantize_2bit<false>(l, in, out, n, threshold);
}

cudaError_t dequantize_1bit(const launch& l, const std::uint32_t* in, float* out, std::size_t n,
                            bool add) {
  return add ? launch_dequantize_1bit<true>(l, in, out, n)
             : launch_dequantize_1bit<false>(l, in, out, n);
}

}  // namespace kvactor::cudak
