// kernels::sgd_update against MXNet's SGD formulas evaluated in double precision:
//   g = clip(rescale_grad * grad, clip_gradient)      (no clipping when clip_gradient < 0)
//   no momentum:   w = (1 - lr*wd) * w - lr * g
//   momentum:      m = momentum*m - lr*wd*w - lr*g;  w = w + m
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kvactor/detail/kernels.hpp"
#include "reference.hpp"

namespace kvactor {
namespace {

using kernels::sgd_params;
using unit::ref_store;
using unit::ref_value;

struct ref_state {
  double w, m;
  // Sums of the magnitudes of the terms that made w and m: a computation in float may be off
  // by a few float roundings of these even when the result itself is tiny (cancellation).
  double w_terms = 0, m_terms = 0;
};

// One step of the formulas in double; the float hyper-parameters are used as the kernel
// receives them.
ref_state reference_step(ref_state s, double grad, const sgd_params& p, bool with_mom) {
  const double lr = p.lr, wd = p.wd, mom = p.momentum, rescale = p.rescale_grad;
  const double clip = p.clip_gradient;
  double g = rescale * grad;
  if (clip >= 0) g = std::max(-clip, std::min(clip, g));
  if (!with_mom) {
    const double w = (1 - lr * wd) * s.w - lr * g;
    return {w, s.m, std::fabs((1 - lr * wd) * s.w) + std::fabs(lr * g), 0};
  }
  const double m = mom * s.m - lr * wd * s.w - lr * g;
  const double m_terms = std::fabs(mom * s.m) + std::fabs(lr * wd * s.w) + std::fabs(lr * g);
  return {s.w + m, m, std::fabs(s.w) + m_terms, m_terms};
}

struct named_params {
  const char* name;
  sgd_params p;
  bool with_mom;
};

std::vector<named_params> cases() {
  std::vector<named_params> v;
  v.push_back({"plain", {0.1f, 0.0f, 0.0f, 1.0f, -1.0f}, false});
  v.push_back({"wd+rescale", {0.05f, 0.0f, 0.2f, 0.5f, -1.0f}, false});
  v.push_back({"clip", {0.1f, 0.0f, 0.01f, 2.0f, 0.3f}, false});
  v.push_back({"clip zero", {0.1f, 0.0f, 0.0f, 1.0f, 0.0f}, false});
  v.push_back({"momentum", {0.1f, 0.9f, 0.001f, 1.0f, -1.0f}, true});
  v.push_back({"momentum+wd+clip", {0.02f, 0.5f, 0.3f, 1.5f, 0.5f}, true});
  v.push_back({"mom buffer, momentum 0", {0.1f, 0.0f, 0.1f, 1.0f, -1.0f}, true});
  return v;
}

constexpr std::size_t n = 129;
constexpr int steps = 6;

template <class W>
std::vector<W> to_storage(const std::vector<double>& v) {
  std::vector<W> out;
  for (double x : v)
    out.push_back(ref_store<W>(x));
  return out;
}

std::vector<double> random_doubles(std::mt19937_64& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v)
    x = u(rng);
  return v;
}

// float32 and float64: several steps against the double reference, which never rounds.
template <class W>
void check_multi_step(double rel_tol) {
  std::mt19937_64 rng(11);
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    std::vector<double> w0 = random_doubles(rng, -1, 1);
    std::vector<W> w = to_storage<W>(w0), m(n, W{0});
    std::vector<ref_state> ref(n);
    for (std::size_t i = 0; i < n; ++i)
      ref[i] = {ref_value(w[i]), 0.0, 0.0, 0.0};
    for (int step = 0; step < steps; ++step) {
      const std::vector<W> g = to_storage<W>(random_doubles(rng, -2, 2));
      kernels::sgd_update(dtype_of_v<W>, w.data(), g.data(), c.with_mom ? m.data() : nullptr, c.p,
                          0, n);
      for (std::size_t i = 0; i < n; ++i) {
        ref[i] = reference_step(ref[i], ref_value(g[i]), c.p, c.with_mom);
        const double tol = rel_tol * std::max(1.0, std::fabs(ref[i].w));
        ASSERT_NEAR(ref_value(w[i]), ref[i].w, tol) << "step " << step << " element " << i;
        if (c.with_mom) {
          ASSERT_NEAR(ref_value(m[i]), ref[i].m, tol) << "momentum, step " << step;
        }
      }
    }
  }
}

TEST(SgdUpdate, Float32MatchesTheDoubleReferenceOverSteps) {
  check_multi_step<float>(1e-5);
}
TEST(SgdUpdate, Float64MatchesTheDoubleReferenceOverSteps) {
  check_multi_step<double>(1e-12);
}

// 16-bit weights are updated in float and rounded back, so each step must be within one unit
// in the last place (plus the float error of the terms) of the reference step taken from the
// same stored state. Their momentum is float32 (kernels::slot_dtype), within float error.
template <class W>
double tolerance(double x, double terms) {
  constexpr bool half = std::is_same_v<W, float16>;
  const double min_spacing = half ? std::ldexp(1.0, -24) : std::ldexp(1.0, -133);
  return std::max(unit::ulp_at(std::fabs(x), half ? 11 : 8), min_spacing) +
         8 * std::ldexp(terms, -24);
}

template <class W>
void check_16bit_steps() {
  std::mt19937_64 rng(12);
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    std::vector<W> w = to_storage<W>(random_doubles(rng, -1, 1));
    std::vector<float> m(n, 0.0f);
    for (int step = 0; step < steps; ++step) {
      const std::vector<W> g = to_storage<W>(random_doubles(rng, -2, 2));
      const std::vector<W> w_before = w;
      const std::vector<float> m_before = m;
      kernels::sgd_update(dtype_of_v<W>, w.data(), g.data(), c.with_mom ? m.data() : nullptr, c.p,
                          0, n);
      for (std::size_t i = 0; i < n; ++i) {
        const ref_state want = reference_step({ref_value(w_before[i]), ref_value(m_before[i])},
                                              ref_value(g[i]), c.p, c.with_mom);
        ASSERT_NEAR(ref_value(w[i]), want.w, tolerance<W>(want.w, want.w_terms))
            << "step " << step << " element " << i;
        if (c.with_mom) {
          ASSERT_NEAR(m[i], want.m, 8 * std::ldexp(want.m_terms, -24) + 1e-30)
              << "momentum, step " << step;
        } else {
          ASSERT_EQ(m[i], m_before[i]) << "no momentum buffer was given";
        }
      }
    }
  }
}

TEST(SgdUpdate, Float16StepsMatchTheReferenceWithinOneUlp) {
  check_16bit_steps<float16>();
}
TEST(SgdUpdate, Bfloat16StepsMatchTheReferenceWithinOneUlp) {
  check_16bit_steps<bfloat16>();
}

// Exactly representable values: the formulas give exact results in every floating dtype.
template <class W>
void check_exact() {
  // g = clip(0.5 * 2, 0.75) = 0.75; w = (1 - 0.5*0.25) * 1 - 0.5*0.75 = 0.5
  sgd_params p{0.5f, 0.0f, 0.25f, 0.5f, 0.75f};
  std::vector<W> w{ref_store<W>(1.0)}, g{ref_store<W>(2.0)};
  kernels::sgd_update(dtype_of_v<W>, w.data(), g.data(), nullptr, p, 0, 1);
  EXPECT_EQ(ref_value(w[0]), 0.5);
  // m = 0.5*0.5 - 0.5*0.25*1 - 0.5*0.75 = -0.25; w = 1 - 0.25 = 0.75
  p.momentum = 0.5f;
  w = {ref_store<W>(1.0)};
  // Momentum has kernels::slot_dtype(W): float32 for 16-bit weights.
  std::vector<std::conditional_t<std::is_same_v<W, double>, double, float>> m{0.5};
  kernels::sgd_update(dtype_of_v<W>, w.data(), g.data(), m.data(), p, 0, 1);
  EXPECT_EQ(m[0], -0.25);
  EXPECT_EQ(ref_value(w[0]), 0.75);
  // Negative gradients clip at -clip_gradient: g = max(-0.75, 0.5 * -4) = -0.75;
  // w = 0.875 * 1 + 0.375 = 1.25
  p.momentum = 0.0f;
  w = {ref_store<W>(1.0)};
  g = {ref_store<W>(-4.0)};
  kernels::sgd_update(dtype_of_v<W>, w.data(), g.data(), nullptr, p, 0, 1);
  EXPECT_EQ(ref_value(w[0]), 1.25);
}

TEST(SgdUpdate, ExactValuesInEveryFloatingDtype) {
  check_exact<float>();
  check_exact<double>();
  check_exact<float16>();
  check_exact<bfloat16>();
}

TEST(SgdUpdate, OnlyTheRangeIsUpdated) {
  std::vector<float> w(10, 1.0f), g(10, 1.0f), m(10, 0.0f);
  sgd_params p{0.5f, 0.9f, 0.0f, 1.0f, -1.0f};
  kernels::sgd_update(dtype::float32, w.data(), g.data(), m.data(), p, 3, 6);
  for (std::size_t i = 0; i < 10; ++i) {
    const bool in = i >= 3 && i < 6;
    EXPECT_EQ(w[i], in ? 0.5f : 1.0f) << i;
    EXPECT_EQ(m[i], in ? -0.5f : 0.0f) << i;
  }
}

TEST(SgdUpdate, IntegerWeightsAreLeftAlone) {
  std::vector<std::int32_t> w{5, 6}, g{1, 1};
  kernels::sgd_update(dtype::int32, w.data(), g.data(), nullptr, sgd_params{}, 0, 2);
  EXPECT_EQ(w, (std::vector<std::int32_t>{5, 6}));
}

TEST(SgdUpdate, DefaultsAreMxnets) {
  const sgd_params p;
  EXPECT_FLOAT_EQ(p.lr, 0.01f);
  EXPECT_EQ(p.momentum, 0.0f);
  EXPECT_EQ(p.wd, 0.0f);
  EXPECT_EQ(p.rescale_grad, 1.0f);
  EXPECT_LT(p.clip_gradient, 0.0f);
}

}  // namespace
}  // namespace kvactor
