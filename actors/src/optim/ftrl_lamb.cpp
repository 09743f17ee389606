// ftrl (MXNet 1.x's Ftrl) and lamb (LAMB, two phases around whole-tensor norms).
#include <cmath>

#include "base.hpp"
#include "factories.hpp"
#include "kvactor/detail/kernels.hpp"

namespace kvactor::detail::optim {

namespace {

class ftrl final : public elementwise_optimizer {
 public:
  ftrl(common_params c, double lamda1, double beta)
      : elementwise_optimizer("ftrl", std::move(c)),
        lamda1_(static_cast<float>(lamda1)),
        beta_(static_cast<float>(beta)) {}

  bool lazy_rows() const override { return true; }

 protected:
  std::size_t num_slots() const override { return 2; }

  void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
             std::size_t b, std::size_t e) const noexcept override {
    const kernels::ftrl_params p{
        static_cast<float>(s.lr), lamda1_, beta_, static_cast<float>(s.wd), common_.rescale_grad,
        common_.clip_gradient};
    kernels::ftrl_update(t, w, g, slots[0], slots[1], p, b, e);
  }

 private:
  float lamda1_, beta_;
};

class lamb final : public optimizer_base {
 public:
  lamb(common_params c, kernels::lamb_params p) : optimizer_base("lamb", std::move(c)), p_(p) {}

  // element_wise() stays false: phase 2 needs the norms of the whole weight and direction.
  void update(const key& k, const tensor& merged, tensor& stored,
              updater_state* state) const override {
    optimizer_state& st = checked_state(k, stored, state);
    check_grad(k, merged, stored);
    ++st.count;
    const step_values s = step_for(k, st.count);
    kernels::lamb_params p = p_;
    p.lr = static_cast<float>(s.lr);
    p.wd = static_cast<float>(s.wd);
    p.beta1_t = std::pow(static_cast<double>(p.beta1), static_cast<double>(s.t));
    p.beta2_t = std::pow(static_cast<double>(p.beta2), static_cast<double>(s.t));
    const dtype t = stored.dtype(), st_t = kernels::slot_dtype(t);
    const std::size_t n = stored.size();
    tensor g = tensor::empty(stored.shape(), st_t);  // pooled: reused across updates
    void* w = stored.data_unchecked();
    kernels::lamb_phase1(t, w, merged.data_unchecked(), st.slots[0].data_unchecked(),
                         st.slots[1].data_unchecked(), g.data_unchecked(), p, 0, n);
    const double r1 = std::sqrt(kernels::sum_squares(t, w, 0, n));
    const double r2 = std::sqrt(kernels::sum_squares(st_t, g.data_unchecked(), 0, n));
    kernels::lamb_phase2(t, w, g.data_unchecked(), r1, r2, p, 0, n);
  }

 protected:
  std::size_t num_slots() const override { return 2; }

 private:
  kernels::lamb_params p_;
};

}  // namespace

std::shared_ptr<const updater> make_ftrl(param_reader& r) {
  auto c = common_params::read(r, 0.1);
  if (!(c.learning_rate > 0))
    r.fail("learning_rate must be > 0 (ftrl divides by it), got " + fmt(c.learning_rate));
  const double lamda1 = r.at_least("lamda1", 0.01, 0.0);
  const double beta = r.at_least("beta", 1.0, 0.0);
  return std::make_shared<ftrl>(std::move(c), lamda1, beta);
}

std::shared_ptr<const updater> make_lamb(param_reader& r) {
  auto c = common_params::read(r, 0.001);
  kernels::lamb_params p;
  p.beta1 = static_cast<float>(r.unit("beta1", 0.9));
  p.beta2 = static_cast<float>(r.unit("beta2", 0.999));
  p.epsilon = static_cast<float>(r.at_least("epsilon", 1e-6, 0.0));
  // MXNet passes the bounds to the kernel only when they are truthy.
  const double lo = r.num("lower_bound", -1.0), hi = r.num("upper_bound", -1.0);
  p.lower_bound = lo > 0 ? static_cast<float>(lo) : -1.0f;
  p.upper_bound = hi > 0 ? static_cast<float>(hi) : -1.0f;
  p.bias_correction = r.flag("bias_correction", true);
  p.rescale_grad = c.rescale_grad;
  p.clip_gradient = c.clip_gradient;
  return std::make_shared<lamb>(std::move(c), p);
}

}  // namespace kvactor::detail::optim
