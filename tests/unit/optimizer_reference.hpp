// Independent double-precision references of MXNet 1.x's optimizers and learning-rate
// schedulers, written from MXNet's formulas (python/mxnet/optimizer.py, lr_scheduler.py,
// src/operator/optimizer_op-inl.h) for the optimizer tests; they never call kvactor's kernels.
// Hyper-parameters reach the kernels as floats (as MXNet's operator parameters), so the
// references round them the same way (hp()) and compute everything else in double.
//
// Also a small harness: the updater under test, its state and tensors as doubles.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kvactor/optimizer_state.hpp"
#include "kvactor/serialization/optimizer_config.hpp"
#include "kvactor/tensor.hpp"
#include "kvactor/updater.hpp"
#include "optimizers.hpp"
#include "reference.hpp"

namespace kvactor::optref {

/// A hyper-parameter as the kernel receives it: rounded to float.
inline double hp(double x) {
  return static_cast<double>(static_cast<float>(x));
}

inline double clamp_grad(double g, double c) {
  return c > 0 ? std::max(-hp(c), std::min(hp(c), g)) : g;
}

inline double sgn(double x) {
  return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);
}

/// One update's values for one key: its count t (this update included), the scheduled learning
/// rate times lr_mult, and wd times wd_mult (both before any rounding).
struct hyper {
  std::uint64_t t;
  double lr;
  double wd;
};

/// The whole weight, its gradient and the slots as doubles; round_w is how the weight is
/// stored (identity for the free-running reference, the 16-bit rounding for per-step checks).
struct ref_tensors {
  std::vector<double>& w;
  const std::vector<double>& g;
  std::vector<std::vector<double>>& s;
  const std::function<double(double)>& round_w;
};

using ref_update = std::function<void(const hyper&, ref_tensors&)>;

using params = std::map<std::string, double>;

inline double get(const params& p, const std::string& name, double def) {
  auto it = p.find(name);
  return it == p.end() ? def : it->second;
}

/// Applies `each(i)` for every element.
template <class Fn>
void for_each(ref_tensors& x, Fn each) {
  for (std::size_t i = 0; i < x.w.size(); ++i)
    each(i);
}

// ---- the optimizers (config params p as given to set_optimizer) ----

inline ref_update sgd_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd), mom = hp(get(p, "momentum", 0));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i], c);
      if (mom == 0) {
        x.w[i] = (1 - lr * wd) * x.w[i] - lr * g;
      } else {
        double& m = x.s[0][i];
        m = mom * m - lr * wd * x.w[i] - lr * g;
        x.w[i] += m;
      }
    });
  };
}

// MXNet's nag_mom_update runs with out = weight, so the momentum's weight-decay term reads the
// weight it has just written (stored, i.e. rounded, for 16-bit weights).
inline ref_update nag_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd), mom = hp(get(p, "momentum", 0));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i], c);
      if (mom == 0) {
        x.w[i] = (1 - lr * wd) * x.w[i] - lr * g;
        return;
      }
      double& m = x.s[0][i];
      const double m1 = mom * m;
      const double w_new = x.round_w(x.w[i] - m1 + (mom + 1) * (m1 - lr * (g + wd * x.w[i])));
      m = m1 - lr * (g + wd * w_new);
      x.w[i] = w_new;
    });
  };
}

inline ref_update signum_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd), mom = hp(get(p, "momentum", 0.9));
    const double wd_lh = hp(get(p, "wd_lh", 0));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      if (mom == 0) {  // signSGD
        x.w[i] = (1 - lr * wd) * x.w[i] - lr * sgn(x.g[i]);
        return;
      }
      double& m = x.s[0][i];
      m = mom * m - (1 - mom) * wd * x.w[i] - (1 - mom) * clamp_grad(rescale * x.g[i], c);
      x.w[i] = (1 - lr * wd_lh) * x.w[i] + lr * sgn(m);
    });
  };
}

inline ref_update adam_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double b1 = get(p, "beta1", 0.9), b2 = get(p, "beta2", 0.999);
    const double t = static_cast<double>(h.t);
    const double lr = hp(h.lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t)));
    const double wd = hp(h.wd), eps = hp(get(p, "epsilon", 1e-8));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i] + wd * x.w[i], c);
      double &m = x.s[0][i], &v = x.s[1][i];
      m = hp(b1) * m + (1 - hp(b1)) * g;
      v = hp(b2) * v + (1 - hp(b2)) * g * g;
      x.w[i] -= lr * m / (std::sqrt(v) + eps);
    });
  };
}

inline ref_update adagrad_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd);
    const double eps = hp(get(p, "eps", get(p, "epsilon", 1e-7)));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i], c);
      double& hist = x.s[0][i];
      hist += g * g;
      x.w[i] -= lr * (g / std::sqrt(hist + eps) + wd * x.w[i]);
    });
  };
}

inline ref_update rmsprop_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd);
    const double g1 = hp(get(p, "gamma1", 0.9)), g2 = hp(get(p, "gamma2", 0.9));
    const double eps = hp(get(p, "epsilon", 1e-8)), cw = get(p, "clip_weights", -1);
    const bool centered = get(p, "centered", 0) != 0;
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i] + wd * x.w[i], c);
      double& n = x.s[0][i];
      n = (1 - g1) * g * g + g1 * n;
      double w;
      if (!centered) {
        w = x.w[i] - lr * g / std::sqrt(n + eps);
      } else {
        double &gm = x.s[1][i], &delta = x.s[2][i];
        gm = (1 - g1) * g + g1 * gm;
        delta = g2 * delta - lr * g / std::sqrt(n - gm * gm + eps);
        w = x.w[i] + delta;
      }
      x.w[i] = cw > 0 ? std::max(-hp(cw), std::min(hp(cw), w)) : w;
    });
  };
}

inline ref_update adadelta_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double wd = hp(h.wd), rho = hp(get(p, "rho", 0.9)), eps = hp(get(p, "epsilon", 1e-5));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i], c);
      double &acc_g = x.s[0][i], &acc_d = x.s[1][i];
      acc_g = rho * acc_g + (1 - rho) * g * g;
      const double d = std::sqrt(acc_d + eps) / std::sqrt(acc_g + eps) * g;
      acc_d = rho * acc_d + (1 - rho) * d * d;
      x.w[i] -= d + wd * x.w[i];
    });
  };
}

inline ref_update ftrl_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd);
    const double l1 = hp(get(p, "lamda1", 0.01)), beta = hp(get(p, "beta", 1));
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i], c);
      double &z = x.s[0][i], &n = x.s[1][i];
      z += g - (std::sqrt(n + g * g) - std::sqrt(n)) * x.w[i] / lr;
      n += g * g;
      x.w[i] = std::fabs(z) > l1 ? (sgn(z) * l1 - z) / ((beta + std::sqrt(n)) / lr + wd) : 0.0;
    });
  };
}

inline ref_update lamb_ref(const params& p) {
  return [p](const hyper& h, ref_tensors& x) {
    const double lr = hp(h.lr), wd = hp(h.wd);
    const double b1 = get(p, "beta1", 0.9), b2 = get(p, "beta2", 0.999);
    const double eps = hp(get(p, "epsilon", 1e-6)), t = static_cast<double>(h.t);
    const bool bc = get(p, "bias_correction", 1) != 0;
    const double lo = get(p, "lower_bound", -1), hi = get(p, "upper_bound", -1);
    const double rescale = hp(get(p, "rescale_grad", 1)), c = get(p, "clip_gradient", -1);
    std::vector<double> d(x.w.size());
    double ww = 0, dd = 0;
    for_each(x, [&](std::size_t i) {
      const double g = clamp_grad(rescale * x.g[i], c);
      double &m = x.s[0][i], &v = x.s[1][i];
      m = hp(b1) * m + (1 - hp(b1)) * g;
      v = hp(b2) * v + (1 - hp(b2)) * g * g;
      // MXNet's lamb_update_phase1 takes beta1^t of its float beta1.
      const double mh = bc ? m / (1 - std::pow(hp(b1), t)) : m;
      const double vh = bc ? v / (1 - std::pow(hp(b2), t)) : v;
      d[i] = mh / (std::sqrt(vh) + eps) + wd * x.w[i];
      ww += x.w[i] * x.w[i];
      dd += d[i] * d[i];
    });
    double r1 = std::sqrt(ww);
    const double r2 = std::sqrt(dd);
    if (lo > 0) r1 = std::max(r1, hp(lo));
    if (hi > 0) r1 = std::min(r1, hp(hi));
    const double ratio = (r1 == 0 || r2 == 0) ? 1.0 : r1 / r2;
    for_each(x, [&](std::size_t i) { x.w[i] -= lr * ratio * d[i]; });
  };
}

// ---- MXNet 1.x's schedulers, as the stateful Python objects (called once per update) ----

class ref_scheduler {
 public:
  virtual ~ref_scheduler() = default;
  virtual double operator()(std::uint64_t num_update) = 0;
};

struct warmup {
  std::uint64_t steps = 0;
  double begin_lr = 0;
  bool constant = false;
  double lr(double final_lr, std::uint64_t n) const {
    if (constant) return begin_lr;
    return begin_lr + (final_lr - begin_lr) * static_cast<double>(n) / static_cast<double>(steps);
  }
};

class ref_factor final : public ref_scheduler {
 public:
  ref_factor(double base, std::uint64_t step, double factor, double stop, warmup w)
      : base_(base), final_(base), step_(step), factor_(factor), stop_(stop), w_(w) {}
  double operator()(std::uint64_t n) override {
    if (n < w_.steps) return w_.lr(final_, n);
    while (n > count_ + step_) {
      count_ += step_;
      base_ *= factor_;
      if (base_ < stop_) base_ = stop_;
    }
    return base_;
  }

 private:
  double base_, final_;
  std::uint64_t step_;
  double factor_, stop_;
  warmup w_;
  std::uint64_t count_ = 0;
};

class ref_multifactor final : public ref_scheduler {
 public:
  ref_multifactor(double base, std::vector<std::uint64_t> steps, double factor, warmup w)
      : base_(base), final_(base), steps_(std::move(steps)), factor_(factor), w_(w) {}
  double operator()(std::uint64_t n) override {
    if (n < w_.steps) return w_.lr(final_, n);
    while (ind_ < steps_.size()) {
      if (n > steps_[ind_]) {
        ++ind_;
        base_ *= factor_;
      } else {
        return base_;
      }
    }
    return base_;
  }

 private:
  double base_, final_;
  std::vector<std::uint64_t> steps_;
  double factor_;
  warmup w_;
  std::size_t ind_ = 0;
};

class ref_poly_cosine final : public ref_scheduler {
 public:
  ref_poly_cosine(bool cosine, double base, std::uint64_t max_update, double pwr, double final_lr,
                  warmup w)
      : cosine_(cosine),
        base_(base),
        orig_(base),
        max_(max_update),
        pwr_(pwr),
        final_(final_lr),
        w_(w) {}
  double operator()(std::uint64_t n) override {
    if (n < w_.steps) return w_.lr(orig_, n);
    if (n <= max_) {
      const double frac = static_cast<double>(n - w_.steps) / static_cast<double>(max_ - w_.steps);
      base_ = cosine_
                  ? final_ + (orig_ - final_) * (1 + std::cos(3.14159265358979323846 * frac)) / 2
                  : final_ + (orig_ - final_) * std::pow(1 - frac, pwr_);
    }
    return base_;
  }

 private:
  bool cosine_;
  double base_, orig_;
  std::uint64_t max_;
  double pwr_, final_;
  warmup w_;
};

// ---- harness ----

inline std::shared_ptr<const updater> make(const optimizer_config& cfg) {
  auto r = detail::make_optimizer(cfg);
  if (!r) throw error{r.error()};
  return *r;
}

inline optimizer_state& state_of(const std::unique_ptr<updater_state>& s) {
  auto* st = dynamic_cast<optimizer_state*>(s.get());
  if (!st) throw std::runtime_error("not an optimizer_state");
  return *st;
}

inline std::vector<double> values(const tensor& t) {
  std::vector<double> v(t.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = t.at(i);
  return v;
}

inline std::vector<std::vector<double>> slot_values(const optimizer_state& st) {
  std::vector<std::vector<double>> out;
  for (const auto& s : st.slots)
    out.push_back(values(s));
  return out;
}

/// A tensor of dtype t holding v (each value rounded as tensor::set rounds).
inline tensor make_tensor(const std::vector<double>& v, const shape& s, dtype t) {
  tensor out = tensor::zeros(s, t);
  for (std::size_t i = 0; i < v.size(); ++i)
    out.set(i, v[i]);
  return out;
}

inline std::vector<double> uniform(std::mt19937_64& rng, std::size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v)
    x = u(rng);
  return v;
}

/// Byte-equal tensors (same dtype and size).
inline bool same_bits(const tensor& a, const tensor& b) {
  return a.dtype() == b.dtype() && a.size() == b.size() &&
         std::memcmp(a.data_unchecked(), b.data_unchecked(), a.nbytes()) == 0;
}

}  // namespace kvactor::optref
