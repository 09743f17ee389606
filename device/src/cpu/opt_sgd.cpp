// SGD, NAG, Signum and signSGD update kernels (see kernels.hpp for the formulas).
#include "arith.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::kernels {

namespace {

using detail::arith;
using detail::clip;
using detail::sign;
using detail::slot_t;

template <class W, bool Clip>
void sgd_loop(W* w, const W* g, const sgd_params& p, std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F decay = F(1) - lr * wd, lr_rescale = lr * rescale;
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    if constexpr (Clip)
      w[i] = A::out(decay * wi - lr * clip(rescale * A::in(g[i]), c));
    else
      w[i] = A::out(decay * wi - lr_rescale * A::in(g[i]));
  }
}

template <class W, bool Clip>
void sgd_mom_loop(W* w, const W* g, slot_t<W>* m, const sgd_params& p, std::size_t b,
                  std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F mom = p.momentum, lr_wd = lr * wd, lr_rescale = lr * rescale;
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    F mi;
    if constexpr (Clip)
      mi = mom * m[i] - lr_wd * wi - lr * clip(rescale * A::in(g[i]), c);
    else
      mi = mom * m[i] - lr_wd * wi - lr_rescale * A::in(g[i]);
    m[i] = mi;
    w[i] = A::out(wi + mi);
  }
}

template <class W, bool Clip>
void nag_loop(W* w, const W* g, slot_t<W>* m, const nag_params& p, std::size_t b,
              std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F mom = p.momentum, mom1 = p.momentum + F(1);
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    const F gi = Clip ? clip(rescale * A::in(g[i]), c) : rescale * A::in(g[i]);
    const F mi = mom * m[i];
    const W wo = A::out(wi - mi + mom1 * (mi - lr * (gi + wd * wi)));
    w[i] = wo;
    // MXNet updates in place, so its second read of the weight sees the new value.
    m[i] = mi - lr * (gi + wd * A::in(wo));
  }
}

template <class W, bool Clip>
void signum_loop(W* w, const W* g, slot_t<W>* m, const signum_params& p, std::size_t b,
                 std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F mom = p.momentum, one_minus = F(1) - mom;
  const F decay = F(1) - lr * F(p.wd_lh), om_rescale = one_minus * rescale;
  for (std::size_t i = b; i < e; ++i) {
    const F wi = A::in(w[i]);
    F mi;
    if constexpr (Clip)
      mi = mom * m[i] - one_minus * wd * wi - one_minus * clip(rescale * A::in(g[i]), c);
    else
      mi = mom * m[i] - one_minus * wd * wi - om_rescale * A::in(g[i]);
    m[i] = mi;
    w[i] = A::out(decay * wi + lr * sign(mi));
  }
}

template <class W>
void signsgd_loop(W* w, const W* g, const signum_params& p, std::size_t b, std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, decay = F(1) - lr * F(p.wd);
  for (std::size_t i = b; i < e; ++i)
    w[i] = A::out(decay * A::in(w[i]) - lr * sign(A::in(g[i])));
}

}  // namespace

void sgd_update(dtype t, void* weight, const void* grad, void* mom, const sgd_params& p,
                std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* m = static_cast<slot_t<W>*>(mom);
    if (m)
      c ? sgd_mom_loop<W, true>(w, g, m, p, begin, end)
        : sgd_mom_loop<W, false>(w, g, m, p, begin, end);
    else
      c ? sgd_loop<W, true>(w, g, p, begin, end) : sgd_loop<W, false>(w, g, p, begin, end);
  });
}

void nag_update(dtype t, void* weight, const void* grad, void* mom, const nag_params& p,
                std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* m = static_cast<slot_t<W>*>(mom);
    c ? nag_loop<W, true>(w, g, m, p, begin, end) : nag_loop<W, false>(w, g, m, p, begin, end);
  });
}

void signum_update(dtype t, void* weight, const void* grad, void* mom, const signum_params& p,
                   std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    W* w = static_cast<W*>(weight);
    const W* g = static_cast<const W*>(grad);
    auto* m = static_cast<slot_t<W>*>(mom);
    c ? signum_loop<W, true>(w, g, m, p, begin, end)
      : signum_loop<W, false>(w, g, m, p, begin, end);
  });
}

void signsgd_update(dtype t, void* weight, const void* grad, const signum_params& p,
                    std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    signsgd_loop<W>(static_cast<W*>(weight), static_cast<const W*>(grad), p, begin, end);
  });
}

}  // namespace kvactor::kernels
