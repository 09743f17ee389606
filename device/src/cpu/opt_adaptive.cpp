// AdaGrad, RMSProp (plain and centered) and AdaDelta update kernels (see kernels.hpp).
#include <cmath>

#include "arith.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::kernels {

namespace {

using detail::arith;
using detail::clip;
using detail::slot_t;

template <class W, bool Clip>
void adagrad_loop(W* w, const W* g, slot_t<W>* h, const adagrad_params& p, std::size_t b,
                  std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient, eps = p.epsilon;
  for (std::size_t i = b; i < e; ++i) {
    F gr = A::in(g[i]) * rescale;
    if constexpr (Clip) gr = clip(gr, c);
    const F hi = h[i] + gr * gr;
    h[i] = hi;
    const F div = gr / std::sqrt(hi + eps);
    const F wi = A::in(w[i]);
    w[i] = A::out(wi - (div + wi * wd) * lr);
  }
}

template <class W, bool Clip, bool ClipW>
void rmsprop_loop(W* w, const W* g, slot_t<W>* n, const rmsprop_params& p, std::size_t b,
                  std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F g1 = p.gamma1, one_g1 = F(1) - g1, eps = p.epsilon, cw = p.clip_weights;
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    F gr = rescale * A::in(g[i]) + wd * wi;
    if constexpr (Clip) gr = clip(gr, c);
    const F ni = one_g1 * (gr * gr) + g1 * n[i];
    n[i] = ni;
    F wo = wi - lr * (gr / std::sqrt(ni + eps));
    if constexpr (ClipW) wo = clip(wo, cw);
    w[i] = A::out(wo);
  }
}

template <class W, bool Clip, bool ClipW>
void rmsprop_centered_loop(W* w, const W* g, slot_t<W>* n, slot_t<W>* gm, slot_t<W>* delta,
                           const rmsprop_params& p, std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F g1 = p.gamma1, one_g1 = F(1) - g1, g2 = p.gamma2, eps = p.epsilon;
  const F cw = p.clip_weights;
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    F gr = rescale * A::in(g[i]) + wd * wi;
    if constexpr (Clip) gr = clip(gr, c);
    const F ni = one_g1 * gr * gr + g1 * n[i];
    const F gi = one_g1 * gr + g1 * gm[i];
    const F di = g2 * delta[i] - (lr * gr / std::sqrt(ni - gi * gi + eps));
    n[i] = ni;
    gm[i] = gi;
    delta[i] = di;
    F wo = wi + di;
    if constexpr (ClipW) wo = clip(wo, cw);
    w[i] = A::out(wo);
  }
}

template <class W, bool Clip>
void adadelta_loop(W* w, const W* g, slot_t<W>* acc_g, slot_t<W>* acc_d, const adadelta_params& p,
                   std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F rho = p.rho, one_rho = F(1) - rho, eps = p.epsilon;
  for (std::size_t i = b; i < e; ++i) {
    F gr = A::in(g[i]) * rescale;
    if constexpr (Clip) gr = clip(gr, c);
    const F ag = rho * acc_g[i] + one_rho * gr * gr;
    const F d = std::sqrt(acc_d[i] + eps) / std::sqrt(ag + eps) * gr;
    acc_g[i] = ag;
    acc_d[i] = rho * acc_d[i] + one_rho * d * d;
    const F wi = A::in(w[i]);
    w[i] = A::out(wi - (d + wd * wi));
  }
}

}  // namespace

void adagrad_update(dtype t, void* weight, const void* grad, void* history, const adagrad_params& p,
                    std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* h = static_cast<slot_t<W>*>(history);
    c ? adagrad_loop<W, true>(w, g, h, p, begin, end)
      : adagrad_loop<W, false>(w, g, h, p, begin, end);
  });
}

void rmsprop_update(dtype t, void* weight, const void* grad, void* n, const rmsprop_params& p,
                    std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f, cw = p.clip_weights >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* ns = static_cast<slot_t<W>*>(n);
    if (c)
      cw ? rmsprop_loop<W, true, true>(w, g, ns, p, begin, end)
         : rmsprop_loop<W, true, false>(w, g, ns, p, begin, end);
    else
      cw ? rmsprop_loop<W, false, true>(w, g, ns, p, begin, end)
         : rmsprop_loop<W, false, false>(w, g, ns, p, begin, end);
  });
}

void rmsprop_centered_update(dtype t, void* weight, const void* grad, void* n, void* gmean,
                             void* delta, const rmsprop_params& p, std::size_t begin,
                             std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f, cw = p.clip_weights >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    using S = slot_t<W>;
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* ns = static_cast<S*>(n);
    auto* gm = static_cast<S*>(gmean);
    auto* d = static_cast<S*>(delta);
    if (c)
      cw ? rmsprop_centered_loop<W, true, true>(w, g, ns, gm, d, p, begin, end)
         : rmsprop_centered_loop<W, true, false>(w, g, ns, gm, d, p, begin, end);
    else
      cw ? rmsprop_centered_loop<W, false, true>(w, g, ns, gm, d, p, begin, end)
         : rmsprop_centered_loop<W, false, false>(w, g, ns, gm, d, p, begin, end);
  });
}

void adadelta_update(dtype t, void* weight, const void* grad, void* acc_g, void* acc_delta,
                     const adadelta_params& p, std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    using S = slot_t<W>;
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* ag = static_cast<S*>(acc_g);
    auto* ad = static_cast<S*>(acc_delta);
    c ? adadelta_loop<W, true>(w, g, ag, ad, p, begin, end)
      : adadelta_loop<W, false>(w, g, ag, ad, p, begin, end);
  });
}

}  // namespace kvactor::kernels
