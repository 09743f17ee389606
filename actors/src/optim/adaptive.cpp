// adam, adagrad, rmsprop and adadelta (MXNet 1.x's Adam, AdaGrad, RMSProp, AdaDelta).
#include <cmath>

#include "base.hpp"
#include "factories.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::detail::optim {

namespace {

class adam final : public elementwise_optimizer {
 public:
  adam(common_params c, double beta1, double beta2, double epsilon, bool lazy)
      : elementwise_optimizer("adam", std::move(c)),
        beta1_(beta1),
        beta2_(beta2),
        epsilon_(epsilon),
        lazy_(lazy) {}

  bool lazy_rows() const override { return lazy_; }
  bool device_capable() const override { return true; }

 protected:
  std::size_t num_slots() const override { return 2; }

  kernels::adam_params params(const step_values& s) const {
    // MXNet folds the bias correction into the learning rate, in double, per update.
    const double td = static_cast<double>(s.t);
    const double coef1 = 1.0 - std::pow(beta1_, td), coef2 = 1.0 - std::pow(beta2_, td);
    kernels::adam_params p;
    p.lr = static_cast<float>(s.lr * std::sqrt(coef2) / coef1);
    p.beta1 = static_cast<float>(beta1_);
    p.beta2 = static_cast<float>(beta2_);
    p.epsilon = static_cast<float>(epsilon_);
    p.wd = static_cast<float>(s.wd);
    p.rescale_grad = common_.rescale_grad;
    p.clip_gradient = common_.clip_gradient;
    return p;
  }
  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    kernels::adam_update(t, w, g, slots[0], slots[1], params(s), b, e);
  }
  void apply_async(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
                   std::size_t n, const device_stream& st) const override {
    device_kernels::adam_update_async(st, t, w, g, slots[0], slots[1], params(s), n);
  }

 private:
  double beta1_, beta2_, epsilon_;
  bool lazy_;
};

class adagrad final : public elementwise_optimizer {
 public:
  adagrad(common_params c, double eps)
      : elementwise_optimizer("adagrad", std::move(c)), eps_(static_cast<float>(eps)) {}

  bool lazy_rows() const override { return true; }

 protected:
  std::size_t num_slots() const override { return 1; }

  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    const kernels::adagrad_params p{static_cast<float>(s.lr), eps_, static_cast<float>(s.wd),
                                    common_.rescale_grad, common_.clip_gradient};
    kernels::adagrad_update(t, w, g, slots[0], p, b, e);
  }

 private:
  float eps_;
};

class rmsprop final : public elementwise_optimizer {
 public:
  rmsprop(common_params c, kernels::rmsprop_params p, bool centered)
      : elementwise_optimizer("rmsprop", std::move(c)), p_(p), centered_(centered) {}

 protected:
  std::size_t num_slots() const override { return centered_ ? 3 : 1; }

  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    kernels::rmsprop_params p = p_;
    p.lr = static_cast<float>(s.lr);
    p.wd = static_cast<float>(s.wd);
    if (centered_)
      kernels::rmsprop_centered_update(t, w, g, slots[0], slots[1], slots[2], p, b, e);
    else
      kernels::rmsprop_update(t, w, g, slots[0], p, b, e);
  }

 private:
  kernels::rmsprop_params p_;
  bool centered_;
};

class adadelta final : public elementwise_optimizer {
 public:
  adadelta(common_params c, double rho, double epsilon)
      : elementwise_optimizer("adadelta", std::move(c)),
        rho_(static_cast<float>(rho)),
        epsilon_(static_cast<float>(epsilon)) {}

 protected:
  std::size_t num_slots() const override { return 2; }

  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    // MXNet 1.x's AdaDelta has no learning rate.
    const kernels::adadelta_params p{rho_, epsilon_, static_cast<float>(s.wd), common_.rescale_grad,
                                     common_.clip_gradient};
    kernels::adadelta_update(t, w, g, slots[0], slots[1], p, b, e);
  }

 private:
  float rho_, epsilon_;
};

}  // namespace

std::shared_ptr<const updater> make_adam(param_reader& r) {
  auto c = common_params::read(r, 0.001);
  const double beta1 = r.unit("beta1", 0.9);
  const double beta2 = r.unit("beta2", 0.999);
  const double epsilon = r.at_least("epsilon", 1e-8, 0.0);
  const bool lazy = r.flag("lazy_update", true);
  return std::make_shared<adam>(std::move(c), beta1, beta2, epsilon, lazy);
}

std::shared_ptr<const updater> make_adagrad(param_reader& r) {
  auto c = common_params::read(r, 0.01);
  // MXNet 1.x's AdaGrad calls it eps; 2.x (and the adagrad_update operator) epsilon.
  if (r.has("eps") && r.has("epsilon") && r.num("eps", 0) != r.num("epsilon", 0))
    r.fail("eps and its alias epsilon disagree (" + fmt(r.num("eps", 0)) + " vs " +
           fmt(r.num("epsilon", 0)) + ")");
  const char* name = r.has("eps") || !r.has("epsilon") ? "eps" : "epsilon";
  const double eps = r.at_least(name, 1e-7, 0.0);
  r.num("epsilon", 0);
  return std::make_shared<adagrad>(std::move(c), eps);
}

std::shared_ptr<const updater> make_rmsprop(param_reader& r) {
  auto c = common_params::read(r, 0.001);
  kernels::rmsprop_params p;
  p.gamma1 = static_cast<float>(r.unit("gamma1", 0.9));
  p.gamma2 = static_cast<float>(r.unit("gamma2", 0.9));
  p.epsilon = static_cast<float>(r.at_least("epsilon", 1e-8, 0.0));
  const bool centered = r.flag("centered", false);
  const double cw = r.num("clip_weights", -1.0);
  p.clip_weights = cw > 0 ? static_cast<float>(cw) : -1.0f;
  p.rescale_grad = c.rescale_grad;
  p.clip_gradient = c.clip_gradient;
  return std::make_shared<rmsprop>(std::move(c), p, centered);
}

std::shared_ptr<const updater> make_adadelta(param_reader& r) {
  auto c = common_params::read(r, 0.01);
  const double rho = r.unit("rho", 0.9);
  const double epsilon = r.at_least("epsilon", 1e-5, 0.0);
  return std::make_shared<adadelta>(std::move(c), rho, epsilon);
}

}  // namespace kvactor::detail::optim
