// CPU kernels on raw element ranges [begin, end). Each is a plain loop the compiler
// vectorises; callers split big arrays into ranges and run them on a thread_pool.
// 16-bit floats are converted to float, computed in float and rounded back; integer sums wrap
// (two's complement), never overflow into undefined behaviour.
// Thread-safety: pure functions; concurrent calls on disjoint ranges are safe.
#pragma once

#include <cstddef>

#include "kvactor/dtype.hpp"

namespace kvactor::kernels {

/// dst[i] = srcs[0][i] + ... + srcs[k-1][i], summed in that order. k >= 1. dst may be one of
/// the sources.
void sum(dtype t, void* dst, const void* const* srcs, std::size_t k, std::size_t begin,
         std::size_t end) noexcept;

/// dst[i] += src[i].
void accumulate(dtype t, void* dst, const void* src, std::size_t begin, std::size_t end) noexcept;

void copy(dtype t, void* dst, const void* src, std::size_t begin, std::size_t end) noexcept;

/// dst[i] = value converted to t.
void fill(dtype t, void* dst, double value, std::size_t begin, std::size_t end) noexcept;

/// dst[i] = src[i] converted from `from` to `to`.
void cast(dtype from, const void* src, dtype to, void* dst, std::size_t begin,
          std::size_t end) noexcept;

/// Element i as double / set from double (the conversion fill() uses).
double load(dtype t, const void* p, std::size_t i) noexcept;
void store(dtype t, void* p, std::size_t i, double value) noexcept;

/// MXNet's SGD: g = clip(rescale_grad * grad, clip_gradient) (no clipping when
/// clip_gradient < 0);
/// without momentum  w = (1 - lr*wd) * w - lr * g;
/// with momentum     m = momentum*m - lr*wd*w - lr*g;  w = w + m.
/// Floating dtypes only; 16-bit weights are updated in float and rounded back, mom has the
/// weight's dtype.
struct sgd_params {
  float lr = 0.01f;
  float momentum = 0.0f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void sgd_update(dtype t, void* weight, const void* grad, void* mom, const sgd_params& p,
                std::size_t begin, std::size_t end) noexcept;

}  // namespace kvactor::kernels
