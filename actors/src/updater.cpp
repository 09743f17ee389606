#include "kvactor/updater.hpp"

namespace kvactor {

std::unique_ptr<updater_state> updater::make_state(const key&, const tensor&) const {
  return nullptr;
}

void updater::begin_update(const key&, updater_state*) const {}

void updater::update_range(const key& k, const tensor& merged, tensor& stored, updater_state* state,
                           std::size_t, std::size_t) const {
  // Only reached for updaters that claim element_wise() without splitting themselves.
  update(k, merged, stored, state);
}

void updater::update_rows(const key& k, const std::int64_t*, std::size_t, const tensor&, tensor&,
                          updater_state*) const {
  throw error{errc::unsupported,
              "this updater has no row-sparse (lazy) update; key " + k.to_string()};
}

void updater::update_async(const key& k, const tensor&, tensor&, updater_state*,
                           const device_stream&) const {
  throw error{errc::unsupported, "this updater runs on host memory only; key " + k.to_string()};
}

namespace {
class fn_updater final : public updater {
 public:
  explicit fn_updater(updater_fn fn) : fn_(std::move(fn)) {}
  void update(const key& k, const tensor& merged, tensor& stored, updater_state*) const override {
    fn_(k, merged, stored);
  }

 private:
  updater_fn fn_;
};
}  // namespace

std::shared_ptr<const updater> make_updater(updater_fn fn) {
  if (!fn) return nullptr;
  return std::make_shared<fn_updater>(std::move(fn));
}

}  // namespace kvactor
