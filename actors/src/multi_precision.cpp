#include "multi_precision.hpp"

#include "kvactor/kernels.hpp"
#include "kvactor/optimizer_state.hpp"

namespace kvactor::detail {

namespace {

bool low_precision(dtype t) { return t == dtype::float16 || t == dtype::bfloat16; }

class multi_precision final : public updater {
 public:
  explicit multi_precision(std::shared_ptr<const updater> inner) : inner_(std::move(inner)) {}

  std::unique_ptr<updater_state> make_state(const key& k, const tensor& stored) const override {
    if (!low_precision(stored.dtype())) return inner_->make_state(k, stored);
    tensor master = stored.astype(dtype::float32);
    auto st = inner_->make_state(k, master);
    auto* os = dynamic_cast<optimizer_state*>(st.get());
    if (!os)
      throw error{errc::unsupported, "multi-precision needs one of kvactor's optimizers (key " +
                                         k.to_string() + ")"};
    os->master = std::move(master);
    return st;
  }

  void update(const key& k, const tensor& merged, tensor& stored,
              updater_state* state) const override {
    auto* os = dynamic_cast<optimizer_state*>(state);
    if (!low_precision(stored.dtype()) || !os || !os->master.defined()) {
      inner_->update(k, merged, stored, state);
      return;
    }
    const tensor merged32 = merged.astype(dtype::float32);
    inner_->update(k, merged32, os->master, state);
    kernels::cast(dtype::float32, os->master.data_unchecked(), stored.dtype(),
                  stored.data_unchecked(), 0, stored.size());
  }

  bool lazy_rows() const override { return inner_->lazy_rows(); }

  void update_rows(const key& k, const std::int64_t* rows, std::size_t num_rows,
                   const tensor& grad_rows, tensor& stored, updater_state* state) const override {
    auto* os = dynamic_cast<optimizer_state*>(state);
    if (!low_precision(stored.dtype()) || !os || !os->master.defined()) {
      inner_->update_rows(k, rows, num_rows, grad_rows, stored, state);
      return;
    }
    const tensor g32 = grad_rows.astype(dtype::float32);
    inner_->update_rows(k, rows, num_rows, g32, os->master, state);
    const std::size_t row = stored.shape().ndim() ? stored.size() / static_cast<std::size_t>(stored.shape()[0]) : 1;
    for (std::size_t i = 0; i < num_rows; ++i) {
      const std::size_t b = static_cast<std::size_t>(rows[i]) * row;
      kernels::cast(dtype::float32, os->master.data_unchecked(), stored.dtype(),
                    stored.data_unchecked(), b, b + row);
    }
  }

 private:
  std::shared_ptr<const updater> inner_;
};

}  // namespace

std::shared_ptr<const updater> with_multi_precision(std::shared_ptr<const updater> inner) {
  if (!inner) return inner;
  return std::make_shared<multi_precision>(std::move(inner));
}

}  // namespace kvactor::detail
