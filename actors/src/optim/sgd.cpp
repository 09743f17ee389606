// sgd, nag and signum: the momentum family (MXNet 1.x's SGD, NAG and Signum).
#include "base.hpp"
#include "factories.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::detail::optim {

namespace {

class sgd final : public elementwise_optimizer {
 public:
  sgd(common_params c, double momentum, bool lazy)
      : elementwise_optimizer("sgd", std::move(c)),
        momentum_(static_cast<float>(momentum)),
        lazy_(lazy) {}

  bool lazy_rows() const override { return lazy_; }
  bool device_capable() const override { return true; }

 protected:
  std::size_t num_slots() const override { return momentum_ != 0.0f ? 1 : 0; }

  kernels::sgd_params params(const step_values& s) const {
    return {static_cast<float>(s.lr), momentum_, static_cast<float>(s.wd), common_.rescale_grad,
            common_.clip_gradient};
  }
  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    kernels::sgd_update(t, w, g, momentum_ != 0.0f ? slots[0] : nullptr, params(s), b, e);
  }
  void apply_async(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
                   std::size_t n, const device_stream& st) const override {
    device_kernels::sgd_update_async(st, t, w, g, momentum_ != 0.0f ? slots[0] : nullptr, params(s),
                                     n);
  }

 private:
  float momentum_;
  bool lazy_;
};

class nag final : public elementwise_optimizer {
 public:
  nag(common_params c, double momentum)
      : elementwise_optimizer("nag", std::move(c)), momentum_(static_cast<float>(momentum)) {}

 protected:
  std::size_t num_slots() const override { return momentum_ != 0.0f ? 1 : 0; }

  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    const float lr = static_cast<float>(s.lr), wd = static_cast<float>(s.wd);
    if (momentum_ == 0.0f) {  // MXNet's NAG runs sgd_update without momentum
      const kernels::sgd_params p{lr, 0.0f, wd, common_.rescale_grad, common_.clip_gradient};
      kernels::sgd_update(t, w, g, nullptr, p, b, e);
      return;
    }
    const kernels::nag_params p{lr, momentum_, wd, common_.rescale_grad, common_.clip_gradient};
    kernels::nag_update(t, w, g, slots[0], p, b, e);
  }

 private:
  float momentum_;
};

class signum final : public elementwise_optimizer {
 public:
  signum(common_params c, double momentum, double wd_lh)
      : elementwise_optimizer("signum", std::move(c)),
        momentum_(static_cast<float>(momentum)),
        wd_lh_(static_cast<float>(wd_lh)) {}

 protected:
  std::size_t num_slots() const override { return momentum_ != 0.0f ? 1 : 0; }

  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    const kernels::signum_params p{static_cast<float>(s.lr), momentum_,
                                   static_cast<float>(s.wd), wd_lh_,
                                   common_.rescale_grad,     common_.clip_gradient};
    if (momentum_ == 0.0f)
      kernels::signsgd_update(t, w, g, p, b, e);
    else
      kernels::signum_update(t, w, g, slots[0], p, b, e);
  }

 private:
  float momentum_;
  float wd_lh_;
};

}  // namespace

std::shared_ptr<const updater> make_sgd(param_reader& r) {
  auto c = common_params::read(r, 0.01);
  const double momentum = r.unit("momentum", 0.0);
  const bool lazy = r.flag("lazy_update", true);
  return std::make_shared<sgd>(std::move(c), momentum, lazy);
}

std::shared_ptr<const updater> make_nag(param_reader& r) {
  auto c = common_params::read(r, 0.01);
  const double momentum = r.unit("momentum", 0.0);
  return std::make_shared<nag>(std::move(c), momentum);
}

std::shared_ptr<const updater> make_signum(param_reader& r) {
  auto c = common_params::read(r, 0.01);
  const double momentum = r.unit("momentum", 0.9);
  const double wd_lh = r.at_least("wd_lh", 0.0, 0.0);
  return std::make_shared<signum>(std::move(c), momentum, wd_lh);
}

}  // namespace kvactor::detail::optim
