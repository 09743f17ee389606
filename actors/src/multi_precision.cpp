#include "multi_precision.hpp"

#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/optimizer_state.hpp"
#include "optimizers.hpp"

namespace kvactor::detail {

namespace {

bool low_precision(dtype t) {
  return t == dtype::float16 || t == dtype::bfloat16;
}

class multi_precision final : public updater {
 public:
  explicit multi_precision(std::shared_ptr<const updater> inner) : inner_(std::move(inner)) {}

  std::unique_ptr<updater_state> make_state(const key& k, const tensor& stored) const override {
    if (!low_precision(stored.dtype())) return inner_->make_state(k, stored);
    // On a device the master is filled from the weight by the first update_async, on the
    // stream (no blocking cast here, on the shard's thread).
    tensor master = stored.device().is_cpu()
                        ? stored.astype(dtype::float32)
                        : tensor::empty(stored.shape(), dtype::float32, stored.device());
    auto st = inner_->make_state(k, master);
    auto* os = dynamic_cast<optimizer_state*>(st.get());
    if (!os)
      throw error{errc::unsupported,
                  "multi-precision needs one of kvactor's optimizers (key " + k.to_string() + ")"};
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

  bool device_capable() const override { return inner_->device_capable(); }

  void update_async(const key& k, const tensor& merged, tensor& stored, updater_state* state,
                    const device_stream& s) const override {
    auto* os = dynamic_cast<optimizer_state*>(state);
    if (!low_precision(stored.dtype()) || !os || !os->master.defined()) {
      inner_->update_async(k, merged, stored, state, s);
      return;
    }
    const std::size_t n = stored.size();
    if (os->count == 0)  // a fresh state: the master starts as the weight
      device_kernels::cast_async(s, stored.dtype(), stored.data_unchecked(), dtype::float32,
                                 os->master.data_unchecked(), n);
    // The host path's steps on the stream: the gradient widened, the float32 update of the
    // master, the weight rounded from it.
    tensor merged32 = tensor::empty(merged.shape(), dtype::float32, stored.device());
    device_kernels::cast_async(s, merged.dtype(), merged.data_unchecked(), dtype::float32,
                               merged32.data_unchecked(), n);
    inner_->update_async(k, merged32, os->master, state, s);
    device_kernels::cast_async(s, dtype::float32, os->master.data_unchecked(), stored.dtype(),
                               stored.data_unchecked(), n);
    // merged32 must outlive the work that reads it.
    enqueue_callback(s, [merged32](const status&) {});
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
    // The master has the shape the state was made from: a server makes it from the flat part
    // it holds (and restores it so from a file), while a row update needs the weight's table
    // of rows. The same bytes seen as that table.
    tensor master =
        os->master.shape() == stored.shape() ? os->master : os->master.reshape(stored.shape());
    inner_->update_rows(k, rows, num_rows, g32, master, state);
    const std::size_t row =
        stored.shape().ndim() ? stored.size() / static_cast<std::size_t>(stored.shape()[0]) : 1;
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

std::shared_ptr<const updater> split_optimizer::effective() const {
  return multi_precision ? with_multi_precision(inner_updater) : inner_updater;
}

result<split_optimizer> split_multi_precision(const optimizer_config& cfg) {
  split_optimizer out;
  out.inner = cfg;
  const auto it = out.inner.params.find("multi_precision");
  out.multi_precision = it != out.inner.params.end() && it->second != 0;
  if (it != out.inner.params.end()) out.inner.params.erase(it);
  auto opt = make_optimizer(out.inner);
  if (!opt) return opt.error();
  out.inner_updater = std::move(*opt);
  return out;
}

}  // namespace kvactor::detail
