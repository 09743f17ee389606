// FTRL-proximal update kernel (see kernels.hpp).
#include <cmath>

#include "arith.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::kernels {

namespace {

using detail::arith;
using detail::clip;
using detail::sign;
using detail::slot_t;

template <class W, bool Clip>
void ftrl_loop(W* w, const W* g, slot_t<W>* z, slot_t<W>* n, const ftrl_params& p, std::size_t b,
               std::size_t e) noexcept {
  using A = arith<W>;
  using F = typename A::type;
  const F lr = p.lr, wd = p.wd, rescale = p.rescale_grad, c = p.clip_gradient;
  const F l1 = p.lamda1, beta = p.beta;
  for (std::size_t i = b; i < e; ++i) {
    F gr = A::in(g[i]) * rescale;
    if constexpr (Clip) gr = clip(gr, c);
    const F ni = n[i], wi = A::in(w[i]);
    const F zi = z[i] + (gr - (std::sqrt(ni + gr * gr) - std::sqrt(ni)) * wi / lr);
    const F nn = ni + gr * gr;
    z[i] = zi;
    n[i] = nn;
    const F on = std::fabs(zi) > l1 ? F(1) : F(0);
    w[i] = A::out((sign(zi) * l1 - zi) / ((beta + std::sqrt(nn)) / lr + wd) * on);
  }
}

}  // namespace

void ftrl_update(dtype t, void* weight, const void* grad, void* z, void* n, const ftrl_params& p,
                 std::size_t begin, std::size_t end) noexcept {
  if (begin >= end) return;
  const bool c = p.clip_gradient >= 0.0f;
  detail::visit_floating(t, [&](auto tag) {
    using W = decltype(tag);
    using S = slot_t<W>;
    c ? ftrl_loop<W, true>(static_cast<W*>(weight), static_cast<const W*>(grad), static_cast<S*>(z),
                           static_cast<S*>(n), p, begin, end)
      : ftrl_loop<W, false>(static_cast<W*>(weight), static_cast<const W*>(grad),
                            static_cast<S*>(z), static_cast<S*>(n), p, begin, end);
  });
}

}  // namespace kvactor::kernels
