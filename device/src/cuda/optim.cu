// SGD (with and without momentum) and Adam on the device: the formulas and operation order of
// device/src/cpu/opt_sgd.cpp and opt_adam.cpp, per element in the kernel's arithmetic type (float
// for float32 and the 16-bit floats, double for float64). This file is compiled with
// -fmad=false so that a*b + c stays two roundings as on the CPU; IEEE division and square root
// are nvcc's defaults. With a float32 master copy (16-bit weights, MXNet's multi-precision) the
// update runs on the master in float32 and the weight becomes its rounding.
#include <type_traits>

#include "device_math.cuh"
#include "launch.hpp"

namespace kvactor::cudak {

namespace {

template <class F>
__device__ __forceinline__ F clip(F x, F c) {
  return x > c ? c : (x < -c ? -c : x);
}

template <class W>
using slot_t = typename darith<W>::type;

template <class W, bool Clip, bool Mom, bool Master>
__global__ void __launch_bounds__(block_threads)
    sgd_kernel(W* w, const W* g, slot_t<W>* m, float* master, kernels::sgd_params p,
               std::size_t n) {
  using A = darith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F mom = p.momentum;
  const F decay = F(1) - lr * wd, lr_rescale = lr * rescale, lr_wd = lr * wd;
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride) {
    F wi;
    if constexpr (Master)
      wi = master[i];
    else
      wi = A::in(w[i]);
    const F gi = A::in(g[i]);
    F next;
    if constexpr (Mom) {
      F mi;
      if constexpr (Clip)
        mi = mom * m[i] - lr_wd * wi - lr * clip(rescale * gi, c);
      else
        mi = mom * m[i] - lr_wd * wi - lr_rescale * gi;
      m[i] = mi;
      next = wi + mi;
    } else {
      if constexpr (Clip)
        next = decay * wi - lr * clip(rescale * gi, c);
      else
        next = decay * wi - lr_rescale * gi;
    }
    if constexpr (Master) master[i] = next;
    w[i] = A::out(next);
  }
}

template <class W, bool Clip, bool Master>
__global__ void __launch_bounds__(block_threads)
    adam_kernel(W* w, const W* g, slot_t<W>* mean, slot_t<W>* var, float* master,
                kernels::adam_params p, std::size_t n) {
  using A = darith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F b1 = p.beta1, b2 = p.beta2, eps = p.epsilon;
  const F one_b1 = F(1) - b1, one_b2 = F(1) - b2;
  const std::size_t stride = grid_stride();
  for (std::size_t i = thread_index(); i < n; i += stride) {
    F wi;
    if constexpr (Master)
      wi = master[i];
    else
      wi = A::in(w[i]);
    F gr = A::in(g[i]) * rescale + wi * wd;
    if constexpr (Clip) gr = clip(gr, c);
    const F mv = b1 * mean[i] + one_b1 * gr;
    const F vv = b2 * var[i] + one_b2 * gr * gr;
    mean[i] = mv;
    var[i] = vv;
    const F next = wi - lr * mv / (sqrt(vv) + eps);
    if constexpr (Master) master[i] = next;
    w[i] = A::out(next);
  }
}

template <class W, bool Clip, bool Mom, bool Master>
void start_sgd(const launch& l, W* w, const W* g, slot_t<W>* m, float* master,
               const kernels::sgd_params& p, std::size_t n) {
  auto* k = sgd_kernel<W, Clip, Mom, Master>;
  k<<<grid_for(l, k, n), block_threads, 0, l.stream>>>(w, g, m, master, p, n);
}

template <class W, bool Master>
cudaError_t launch_sgd(const launch& l, void* weight, const void* grad, void* mom,
                       const kernels::sgd_params& p, std::size_t n, float* master) {
  auto* w = static_cast<W*>(weight);
  const auto* g = static_cast<const W*>(grad);
  auto* m = static_cast<slot_t<W>*>(mom);
  const bool clip = p.clip_gradient >= 0.0f;
  if (m && clip)
    start_sgd<W, true, true, Master>(l, w, g, m, master, p, n);
  else if (m)
    start_sgd<W, false, true, Master>(l, w, g, m, master, p, n);
  else if (clip)
    start_sgd<W, true, false, Master>(l, w, g, m, master, p, n);
  else
    start_sgd<W, false, false, Master>(l, w, g, m, master, p, n);
  return cudaGetLastError();
}

template <class W, bool Clip, bool Master>
void start_adam(const launch& l, W* w, const W* g, slot_t<W>* m, slot_t<W>* v, float* master,
                const kernels::adam_params& p, std::size_t n) {
  auto* k = adam_kernel<W, Clip, Master>;
  k<<<grid_for(l, k, n), block_threads, 0, l.stream>>>(w, g, m, v, master, p, n);
}

template <class W, bool Master>
cudaError_t launch_adam(const launch& l, void* weight, const void* grad, void* mean, void* var,
                        const kernels::adam_params& p, std::size_t n, float* master) {
  auto* w = static_cast<W*>(weight);
  const auto* g = static_cast<const W*>(grad);
  auto* m = static_cast<slot_t<W>*>(mean);
  auto* v = static_cast<slot_t<W>*>(var);
  if (p.clip_gradient >= 0.0f)
    start_adam<W, true, Master>(l, w, g, m, v, master, p, n);
  else
    start_adam<W, false, Master>(l, w, g, m, v, master, p, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t sgd_update(const launch& l, dtype t, void* weight, const void* grad, void* mom,
                       const kernels::sgd_params& p, std::size_t n, float* master) {
  switch (t) {
    case dtype::float32:
      return launch_sgd<float, false>(l, weight, grad, mom, p, n, nullptr);
    case dtype::float64:
      return launch_sgd<double, false>(l, weight, grad, mom, p, n, nullptr);
    case dtype::float16:
      return master ? launch_sgd<h16, true>(l, weight, grad, mom, p, n, master)
                    : launch_sgd<h16, false>(l, weight, grad, mom, p, n, nullptr);
    case dtype::bfloat16:
      return master ? launch_sgd<b16, true>(l, weight, grad, mom, p, n, master)
                    : launch_sgd<b16, false>(l, weight, grad, mom, p, n, nullptr);
    default:
      return cudaSuccess;  // integer weights: left alone, as on the CPU
  }
}

cudaError_t adam_update(const launch& l, dtype t, void* weight, const void* grad, void* mean,
                        void* var, const kernels::adam_params& p, std::size_t n, float* master) {
  switch (t) {
    case dtype::float32:
      return launch_adam<float, false>(l, weight, grad, mean, var, p, n, nullptr);
    case dtype::float64:
      return launch_adam<double, false>(l, weight, grad, mean, var, p, n, nullptr);
    case dtype::float16:
      return master ? launch_adam<h16, true>(l, weight, grad, mean, var, p, n, master)
                    : launch_adam<h16, false>(l, weight, grad, mean, var, p, n, nullptr);
    case dtype::bfloat16:
      return master ? launch_adam<b16, true>(l, weight, grad, mean, var, p, n, master)
                    : launch_adam<b16, false>(l, weight, grad, mean, var, p, n, nullptr);
    default:
      return cudaSuccess;
  }
}

}  // namespace kvactor::cudak
