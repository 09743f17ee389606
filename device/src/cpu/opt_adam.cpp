// Adam and LAMB update kernels, and the sum of squares LAMB's norms use (see kernels.hpp).
#include <cmath>

#include "arith.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::kernels {

namespace {

using detail::arith;
using detail::clip;
using detail::slot_t;

template <class W, bool Clip>
void adam_loop(W* w, const W* g, slot_t<W>* mean, slot_t<W>* var, const adam_params& p,
               std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F b1 = p.beta1, b2 = p.beta2, eps = p.epsilon;
  const F one_b1 = F(1) - b1, one_b2 = F(1) - b2;
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    F gr = A::in(g[i]) * rescale + wi * wd;
    if constexpr (Clip) gr = clip(gr, c);
    const F m = b1 * mean[i] + one_b1 * gr;
    const F v = b2 * var[i] + one_b2 * gr * gr;
    mean[i] = m;
    var[i] = v;
    w[i] = A::out(wi - lr * m / (std::sqrt(v) + eps));
  }
}

template <class W, bool Clip>
void lamb1_loop(const W* w, const W* g, slot_t<W>* mean, slot_t<W>* var, slot_t<W>* out,
                const lamb_params& p, std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F b1 = p.beta1, b2 = p.beta2, eps = p.epsilon;
  const F one_b1 = F(1) - b1, one_b2 = F(1) - b2;
  const F corr1 = F(1) - static_cast<F>(p.beta1_t), corr2 = F(1) - static_cast<F>(p.beta2_t);
  for (std::size_t i = b; i < e; ++i) {
    F gr = A::in(g[i]) * rescale;
    if constexpr (Clip) gr = clip(gr, c);
    const F m = b1 * mean[i] + one_b1 * gr;
    const F v = b2 * var[i] + one_b2 * gr * gr;
    mean[i] = m;
    var[i] = v;
    const F wi = A::in(w[i]);
    if (p.bias_correction)
      out[i] = (m / corr1) / (std::sqrt(v / corr2) + eps) + wd * wi;
    else
      out[i] = m / (std::sqrt(v) + eps) + wd * wi;
  }
}

template <class W>
void lamb2_loop(W* w, const slot_t<W>* g, double r1d, double r2d, const lamb_params& p,
                std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  F r1 = static_cast<F>(r1d);
  const F r2 = static_cast<F>(r2d);
  if (p.lower_bound >= 0.0f) r1 = std::max(r1, F(p.lower_bound));
  if (p.upper_bound >= 0.0f) r1 = std::min(r1, F(p.upper_bound));
  F lr = p.lr;
  if (!(r1 == F(0) || r2 == F(0))) lr = lr * r1 / r2;
  for (std::size_t i = b; i < e; ++i)
    w[i] = A::out(A::in(w[i]) - lr * g[i]);
}

}  // namespace

void adam_update(dtype t, void* weight, const void* grad, void* mean, void* var,
                 const adam_params& p, std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* m = static_cast<slot_t<W>*>(mean);
    auto* v = static_cast<slot_t<W>*>(var);
    c ? adam_loop<W, true>(w, g, m, v, p, begin, end)
      : adam_loop<W, false>(w, g, m, v, p, begin, end);
  });
}

void lamb_phase1(dtype t, const void* weight, const void* grad, void* mean, void* var, void* g,
                 const lamb_params& p, std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    const W* w = static_cast<const W*>(weight);
    const W* gr = static_cast<const W*>(grad);
    auto* m = static_cast<slot_t<W>*>(mean);
    auto* v = static_cast<slot_t<W>*>(var);
    auto* out = static_cast<slot_t<W>*>(g);
    c ? lamb1_loop<W, true>(w, gr, m, v, out, p, begin, end)
      : lamb1_loop<W, false>(w, gr, m, v, out, p, begin, end);
  });
}

void lamb_phase2(dtype t, void* weight, const void* g, double r1, double r2, const lamb_params& p,
                 std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    lamb2_loop<W>(static_cast<W*>(weight), static_cast<const slot_t<W>*>(g), r1, r2, p, begin, end);
  });
}

double sum_squares(dtype t, const void* x, std::size_t begin, std::size_t end) noexcept {
  double total = 0;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    const W* p = static_cast<const W*>(x);
    for (std::size_t i = begin; i < end; ++i) {
      const double v = static_cast<double>(arith<W>::in(p[i]));
      total += v * v;
    }
  });
  return total;
}

}  // namespace kvactor::kernels
