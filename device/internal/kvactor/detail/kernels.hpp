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

// ---- Optimizer updates (MXNet 1.x's fused update kernels, src/operator/optimizer_op-inl.h) ----
//
// Every update kernel works in place on the element range [begin, end) of one weight:
//  - `weight` and `grad` have the weight's dtype t (float32, float64, float16 or bfloat16;
//    integer dtypes are left alone), the optimizer's state slots have slot_dtype(t): t itself
//    for float32/float64, float32 for the 16-bit floats (as MXNet keeps float32 states with
//    multi_precision). 16-bit weights and gradients are converted to float, the update is
//    computed in float and the weight rounded back once.
//  - weight, grad and the slots must not overlap one another.
//  - Hyper-parameters are floats, as MXNet's operator parameters; the caller folds per-update
//    factors in (learning-rate schedule, lr_mult/wd_mult, Adam's bias correction).
//  - clip_gradient < 0 means no clipping; clip(x, c) = min(max(x, -c), c), NaN stays NaN.
//  - The operation order is MXNet's (per element, in the kernel's dtype), so results match
//    MXNet's CPU/GPU kernels up to the float rounding of the hyper-parameters.
// Concurrent calls on disjoint ranges of one weight are safe.

/// The dtype of optimizer state slots for weights of dtype t.
constexpr dtype slot_dtype(dtype t) noexcept {
  return t == dtype::float16 || t == dtype::bfloat16 ? dtype::float32 : t;
}

/// SGD (sgd_update / sgd_mom_update):
///   g = clip(rescale_grad * grad, clip_gradient)
///   without momentum (mom == nullptr): w = (1 - lr*wd) * w - lr * g
///   with momentum:                     m = momentum*m - lr*wd*w - lr*g;  w = w + m
/// (without clipping MXNet multiplies (lr*rescale_grad)*grad; so does this kernel).
struct sgd_params {
  float lr = 0.01f;
  float momentum = 0.0f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void sgd_update(dtype t, void* weight, const void* grad, void* mom, const sgd_params& p,
                std::size_t begin, std::size_t end) noexcept;

/// NAG with momentum (nag_mom_update), as MXNet runs it in place (out = weight):
///   g  = clip(rescale_grad * grad, clip_gradient)
///   m  = momentum * m
///   w' = w - m + (momentum + 1) * (m - lr * (g + wd * w))
///   m  = m - lr * (g + wd * w')          <- MXNet reads the already updated weight here
///   w  = w'
/// Momentum 0 is plain SGD (MXNet calls sgd_update then): use sgd_update without mom.
/// `mom` is required.
struct nag_params {
  float lr = 0.01f;
  float momentum = 0.0f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void nag_update(dtype t, void* weight, const void* grad, void* mom, const nag_params& p,
                std::size_t begin, std::size_t end) noexcept;

/// Signum (signum_update), momentum > 0:
///   m = momentum*m - (1-momentum)*wd*w - (1-momentum)*clip(rescale_grad*grad, clip_gradient)
///   w = (1 - lr*wd_lh) * w + lr * sign(m)
/// signSGD (signsgd_update, Signum with momentum 0; rescale_grad, clip_gradient and wd_lh
/// have no effect there, as in MXNet):
///   w = (1 - lr*wd) * w - lr * sign(grad)
struct signum_params {
  float lr = 0.01f;
  float momentum = 0.9f;
  float wd = 0.0f;
  float wd_lh = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void signum_update(dtype t, void* weight, const void* grad, void* mom, const signum_params& p,
                   std::size_t begin, std::size_t end) noexcept;
void signsgd_update(dtype t, void* weight, const void* grad, const signum_params& p,
                    std::size_t begin, std::size_t end) noexcept;

/// Adam (adam_update); lr already carries the bias correction sqrt(1-beta2^t)/(1-beta1^t):
///   g = clip(rescale_grad * grad + wd * w, clip_gradient)
///   mean = beta1*mean + (1-beta1)*g;  var = beta2*var + (1-beta2)*g*g
///   w = w - lr * mean / (sqrt(var) + epsilon)
struct adam_params {
  float lr = 0.001f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void adam_update(dtype t, void* weight, const void* grad, void* mean, void* var,
                 const adam_params& p, std::size_t begin, std::size_t end) noexcept;

/// AdaGrad (MXNet 1.x's Python AdaGrad.update; with wd = 0 also its sparse adagrad_update):
///   g = clip(rescale_grad * grad, clip_gradient)
///   history += g*g;  div = g / sqrt(history + epsilon)
///   w = w - (div + wd * w) * lr
struct adagrad_params {
  float lr = 0.01f;
  float epsilon = 1e-7f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void adagrad_update(dtype t, void* weight, const void* grad, void* history, const adagrad_params& p,
                    std::size_t begin, std::size_t end) noexcept;

/// RMSProp. Tieleman & Hinton (rmsprop_update, `n` only):
///   g = clip(rescale_grad * grad + wd * w, clip_gradient)
///   n = (1-gamma1) * g*g + gamma1 * n
///   w = w - lr * g / sqrt(n + epsilon)
/// Graves, centered (rmspropalex_update, slots n, gmean, delta):
///   n = (1-gamma1)*g*g + gamma1*n;  gmean = (1-gamma1)*g + gamma1*gmean
///   delta = gamma2*delta - lr * g / sqrt(n - gmean*gmean + epsilon);  w = w + delta
/// Both then clip the weight to [-clip_weights, clip_weights] when clip_weights >= 0.
struct rmsprop_params {
  float lr = 0.001f;
  float gamma1 = 0.9f;
  float gamma2 = 0.9f;
  float epsilon = 1e-8f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
  float clip_weights = -1.0f;
};
void rmsprop_update(dtype t, void* weight, const void* grad, void* n, const rmsprop_params& p,
                    std::size_t begin, std::size_t end) noexcept;
void rmsprop_centered_update(dtype t, void* weight, const void* grad, void* n, void* gmean,
                             void* delta, const rmsprop_params& p, std::size_t begin,
                             std::size_t end) noexcept;

/// AdaDelta (MXNet 1.x's Python AdaDelta.update; it has no learning rate):
///   g = clip(rescale_grad * grad, clip_gradient)
///   acc_g = rho*acc_g + (1-rho)*g*g
///   d = sqrt(acc_delta + epsilon) / sqrt(acc_g + epsilon) * g
///   acc_delta = rho*acc_delta + (1-rho)*d*d
///   w = w - (d + wd * w)
struct adadelta_params {
  float rho = 0.9f;
  float epsilon = 1e-5f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void adadelta_update(dtype t, void* weight, const void* grad, void* acc_g, void* acc_delta,
                     const adadelta_params& p, std::size_t begin, std::size_t end) noexcept;

/// FTRL-proximal (ftrl_update):
///   g = clip(rescale_grad * grad, clip_gradient)
///   z += g - (sqrt(n + g*g) - sqrt(n)) * w / lr;  n += g*g
///   w = (sign(z)*lamda1 - z) / ((beta + sqrt(n)) / lr + wd) * (|z| > lamda1)
/// lr must be > 0.
struct ftrl_params {
  float lr = 0.1f;
  float lamda1 = 0.01f;
  float beta = 1.0f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
};
void ftrl_update(dtype t, void* weight, const void* grad, void* z, void* n, const ftrl_params& p,
                 std::size_t begin, std::size_t end) noexcept;

/// LAMB in two phases (lamb_update_phase1 / lamb_update_phase2) around two whole-tensor norms:
/// phase 1 writes the direction g (slot_dtype(t)) and updates mean/var:
///   gr = clip(rescale_grad * grad, clip_gradient)
///   mean = beta1*mean + (1-beta1)*gr;  var = beta2*var + (1-beta2)*gr*gr
///   bias_correction: g = (mean/(1-beta1^t)) / (sqrt(var/(1-beta2^t)) + epsilon) + wd*w
///   otherwise:       g = mean / (sqrt(var) + epsilon) + wd*w
/// then r1 = ||w||, r2 = ||g|| (sum_squares over the whole tensor), and phase 2:
///   r1 = max(r1, lower_bound) if lower_bound >= 0;  r1 = min(r1, upper_bound) if upper_bound >= 0
///   ratio = (r1 == 0 || r2 == 0) ? 1 : r1 / r2;  w = w - lr * ratio * g
/// (MXNet computes lr*r1/r2 in that order.)
struct lamb_params {
  float lr = 0.001f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-6f;
  float wd = 0.0f;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;
  bool bias_correction = true;
  double beta1_t = 0.9;    ///< beta1^t of the float beta1 (t = this update's count), as MXNet
  double beta2_t = 0.999;  ///< computes it: std::pow(param.beta1, t) in double
  float lower_bound = -1.0f;
  float upper_bound = -1.0f;
};
void lamb_phase1(dtype t, const void* weight, const void* grad, void* mean, void* var, void* g,
                 const lamb_params& p, std::size_t begin, std::size_t end) noexcept;
void lamb_phase2(dtype t, void* weight, const void* g, double r1, double r2, const lamb_params& p,
                 std::size_t begin, std::size_t end) noexcept;

/// Sum of x[i]^2 over [begin, end), accumulated in double (for norms); 0 for integer dtypes.
double sum_squares(dtype t, const void* x, std::size_t begin, std::size_t end) noexcept;

}  // namespace kvactor::kernels
