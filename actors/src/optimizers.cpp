#include "optimizers.hpp"

#include <cmath>
#include <set>

#include "kvactor/kernels.hpp"

namespace kvactor::detail {

namespace {

struct sgd_state final : updater_state {
  tensor mom;  // empty without momentum
};

class sgd final : public updater {
 public:
  explicit sgd(kernels::sgd_params p) : p_(p) {}

  std::unique_ptr<updater_state> make_state(const key& k, const tensor& stored) const override {
    if (!is_floating(stored.dtype()))
      throw error{errc::unsupported, "sgd updates floating-point weights; key " + k.to_string() +
                                         " is " + to_string(stored.dtype())};
    auto st = std::make_unique<sgd_state>();
    if (p_.momentum != 0.0f) st->mom = tensor::zeros(stored.shape(), stored.dtype());
    return st;
  }

  void update(const key& k, const tensor& merged, tensor& stored,
              updater_state* state) const override {
    update_range(k, merged, stored, state, 0, stored.size());
  }

  bool element_wise() const override { return true; }

  void update_range(const key&, const tensor& merged, tensor& stored, updater_state* state,
                    std::size_t begin, std::size_t end) const override {
    auto* st = static_cast<sgd_state*>(state);
    void* mom = st && st->mom.defined() ? st->mom.data_unchecked() : nullptr;
    kernels::sgd_update(stored.dtype(), stored.data_unchecked(), merged.data_unchecked(), mom,
                        p_, begin, end);
  }

 private:
  kernels::sgd_params p_;
};

status bad(const std::string& what) {
  return status{errc::invalid_argument, "set_optimizer: " + what};
}

}  // namespace

result<std::shared_ptr<const updater>> make_optimizer(const optimizer_config& cfg) {
  if (cfg.type != "sgd")
    return bad("unknown optimizer type \"" + cfg.type + "\" (this build has: sgd)");
  static const std::set<std::string> known = {"learning_rate", "lr",           "momentum", "wd",
                                              "rescale_grad",  "clip_gradient"};
  for (const auto& [name, value] : cfg.params) {
    if (!known.count(name)) return bad("sgd has no hyper-parameter \"" + name + "\"");
    if (!std::isfinite(value)) return bad(name + " must be finite, got " + std::to_string(value));
  }
  kernels::sgd_params p;
  p.lr = static_cast<float>(cfg.get("learning_rate", cfg.get("lr", 0.01)));
  p.momentum = static_cast<float>(cfg.get("momentum", 0.0));
  p.wd = static_cast<float>(cfg.get("wd", 0.0));
  p.rescale_grad = static_cast<float>(cfg.get("rescale_grad", 1.0));
  p.clip_gradient = static_cast<float>(cfg.get("clip_gradient", -1.0));
  if (p.lr < 0) return bad("learning_rate must be >= 0, got " + std::to_string(p.lr));
  if (p.momentum < 0 || p.momentum >= 1)
    return bad("momentum must be in [0, 1), got " + std::to_string(p.momentum));
  if (p.wd < 0) return bad("wd must be >= 0, got " + std::to_string(p.wd));
  return std::shared_ptr<const updater>(std::make_shared<sgd>(p));
}

}  // namespace kvactor::detail
