// Private to device/src/cuda: the kernel launchers the .cu files define and kernels_api.cpp
// calls after checking arguments. Each enqueues on `stream` (the caller made the stream's
// device current) and returns the launch's cudaError_t; n > 0.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kvactor/detail/kernels.hpp"
#include "kvactor/dtype.hpp"

namespace kvactor::cudak {

struct launch {
  cudaStream_t stream;
  int device;    // the stream's device (current)
  int sm_count;  // its multiprocessors
};

constexpr int block_threads = 256;

/// Blocks of block_threads that one multiprocessor of `device` holds at once for `kernel` (the
/// kernel function's host-side address), from cudaOccupancyMaxActiveBlocksPerMultiprocessor;
/// cached per kernel and device (defined in kernels_api.cpp).
int blocks_per_sm(const void* kernel, int device);

/// The grid of a grid-stride kernel over `work` items (one per thread and step): one block
/// per block_threads items, at most as many as the device holds at once, so that the grid is a
/// single wave (no partly filled last wave) and each thread loops over the rest.
template <class... P>
unsigned grid_for(const launch& l, void (*kernel)(P...), std::size_t work) {
  const std::size_t need = (work + block_threads - 1) / block_threads;
  const std::size_t cap =
      static_cast<std::size_t>(blocks_per_sm(reinterpret_cast<const void*>(kernel), l.device)) *
      static_cast<std::size_t>(l.sm_count > 0 ? l.sm_count : 1);
  return static_cast<unsigned>(need == 0 ? 1 : (need < cap ? need : cap));
}

// sum_float.cu: float32, float64, float16, bfloat16. sum_int.cu: int32, int64, uint8.
// 1 <= k <= 256; `vector` when dst and every source are 16-byte aligned.
cudaError_t sum_floating(const launch& l, dtype t, void* dst, const void* const* srcs,
                         std::size_t k, std::size_t n, bool vector);
cudaError_t sum_integer(const launch& l, dtype t, void* dst, const void* const* srcs, std::size_t k,
                        std::size_t n, bool vector);

// cast.cu
/// Fills n elements of `width` bytes (1, 2, 4 or 8) with the bit pattern `bits`.
cudaError_t fill(const launch& l, void* dst, std::uint64_t bits, std::size_t width, std::size_t n);
cudaError_t cast(const launch& l, dtype from, const void* src, dtype to, void* dst, std::size_t n);

// compress.cu (float32; the layout of kvactor/detail/compression.hpp)
cudaError_t quantize_2bit(const launch& l, const float* grad, float* residual, std::uint32_t* out,
                          std::size_t n, float threshold);
cudaError_t quantize_1bit(const launch& l, const float* grad, float* residual, std::uint32_t* out,
                          std::size_t n, float threshold);
cudaError_t dequantize_2bit(const launch& l, const std::uint32_t* in, float* out, std::size_t n,
                            float threshold, bool add);
cudaError_t dequantize_1bit(const launch& l, const std::uint32_t* in, float* out, std::size_t n,
                            bool add);

// optim.cu (floating weight dtypes; master only for 16-bit weights)
cudaError_t sgd_update(const launch& l, dtype t, void* weight, const void* grad, void* mom,
                       const kernels::sgd_params& p, std::size_t n, float* master);
cudaError_t adam_update(const launch& l, dtype t, void* weight, const void* grad, void* mean,
                        void* var, const kernels::adam_params& p, std::size_t n, float* master);

}  // namespace kvactor::cudak
