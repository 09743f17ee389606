#include "base.hpp"

#include <algorithm>

#include "kvactor/detail/kernels.hpp"

namespace kvactor::detail::optim {

common_params common_params::read(param_reader& r, double default_lr) {
  common_params c;
  if (r.has("learning_rate") && r.has("lr") && r.num("learning_rate", 0) != r.num("lr", 0))
    r.fail("learning_rate and its alias lr disagree (" + fmt(r.num("learning_rate", 0)) + " vs " +
           fmt(r.num("lr", 0)) + ")");
  const char* lr_name = r.has("learning_rate") || !r.has("lr") ? "learning_rate" : "lr";
  c.learning_rate = r.at_least(lr_name, default_lr, 0.0);
  r.num("lr", 0);  // known either way
  c.wd = r.at_least("wd", 0.0, 0.0);
  c.rescale_grad = static_cast<float>(r.num("rescale_grad", 1.0));
  const double clip = r.num("clip_gradient", -1.0);
  c.clip_gradient = clip > 0 ? static_cast<float>(clip) : -1.0f;
  c.schedule = lr_schedule::read(r, c.learning_rate);
  for (const char* which : {"lr_mult.", "wd_mult."}) {
    auto& map = which[0] == 'l' ? c.lr_mult : c.wd_mult;
    for (const auto& [k, v] : r.with_prefix(which)) {
      if (!(v >= 0)) r.fail(std::string{which} + k + " must be >= 0, got " + fmt(v));
      map.emplace(k, v);
    }
  }
  return c;
}

std::string mult_name(const key& k) {
  return k.is_int() ? std::to_string(k.as_int()) : k.as_string();
}

double common_params::lr_for(const key& k, std::uint64_t count) const {
  double lr = schedule(count);
  if (!lr_mult.empty())
    if (auto it = lr_mult.find(mult_name(k)); it != lr_mult.end()) lr *= it->second;
  return lr;
}

double common_params::wd_for(const key& k) const {
  double wd = this->wd;
  if (!wd_mult.empty())
    if (auto it = wd_mult.find(mult_name(k)); it != wd_mult.end()) wd *= it->second;
  return wd;
}

optimizer_base::optimizer_base(std::string name, common_params c)
    : name_(std::move(name)), common_(std::move(c)) {}

std::unique_ptr<updater_state> optimizer_base::make_state(const key& k,
                                                          const tensor& stored) const {
  if (!is_floating(stored.dtype()))
    throw error{errc::unsupported, name_ + " updates floating-point weights; key " + k.to_string() +
                                       " is " + to_string(stored.dtype())};
  auto st = std::make_unique<optimizer_state>();
  for (std::size_t i = 0; i < num_slots(); ++i)
    st->slots.push_back(tensor::zeros(stored.shape(), kernels::slot_dtype(stored.dtype())));
  return st;
}

step_values optimizer_base::step_for(const key& k, std::uint64_t count) const {
  return {count, common_.lr_for(k, count), common_.wd_for(k)};
}

optimizer_state& optimizer_base::state_of(const key& k, updater_state* s) const {
  auto* st = dynamic_cast<optimizer_state*>(s);
  if (!st)
    throw error{errc::invalid_argument,
                name_ + ": key " + k.to_string() + " has no optimizer_state (make_state first)"};
  if (st->slots.size() != num_slots())
    throw error{errc::invalid_argument, name_ + ": the state of key " + k.to_string() + " has " +
                                            std::to_string(st->slots.size()) + " slots, " + name_ +
                                            " keeps " + std::to_string(num_slots())};
  return *st;
}

optimizer_state& optimizer_base::checked_state(const key& k, const tensor& stored,
                                               updater_state* s) const {
  if (!is_floating(stored.dtype()))
    throw error{errc::unsupported, name_ + " updates floating-point weights; key " + k.to_string() +
                                       " is " + to_string(stored.dtype())};
  optimizer_state& st = state_of(k, s);
  const dtype want = kernels::slot_dtype(stored.dtype());
  for (std::size_t i = 0; i < st.slots.size(); ++i) {
    const tensor& slot = st.slots[i];
    if (slot.size() != stored.size())
      throw error{errc::shape_mismatch, name_ + ": slot " + std::to_string(i) + " of key " +
                                            k.to_string() + " is " + slot.describe() +
                                            ", the weight " + stored.describe()};
    if (slot.dtype() != want)
      throw error{errc::dtype_mismatch, name_ + ": slot " + std::to_string(i) + " of key " +
                                            k.to_string() + " is " + to_string(slot.dtype()) +
                                            ", weights of " + to_string(stored.dtype()) + " keep " +
                                            to_string(want) + " slots"};
  }
  return st;
}

void optimizer_base::check_grad(const key& k, const tensor& merged, const tensor& stored) const {
  if (merged.dtype() != stored.dtype())
    throw error{errc::dtype_mismatch, name_ + ": gradient " + merged.describe() + " for key " +
                                          k.to_string() + " whose weight is " + stored.describe()};
  if (merged.size() != stored.size())
    throw error{errc::shape_mismatch, name_ + ": gradient " + merged.describe() + " for key " +
                                          k.to_string() + " whose weight is " + stored.describe()};
}

// ---- element-wise optimizers ----

namespace {
slot_ptrs slot_pointers(const optimizer_state& st) {
  slot_ptrs p{};
  for (std::size_t i = 0; i < st.slots.size() && i < p.size(); ++i)
    p[i] = st.slots[i].data_unchecked();
  return p;
}
}  // namespace

void elementwise_optimizer::update(const key& k, const tensor& merged, tensor& stored,
                                   updater_state* state) const {
  optimizer_state& st = checked_state(k, stored, state);
  check_grad(k, merged, stored);
  ++st.count;
  apply(step_for(k, st.count), stored.dtype(), stored.data_unchecked(), merged.data_unchecked(),
        slot_pointers(st), 0, stored.size());
}

void elementwise_optimizer::update_async(const key& k, const tensor& merged, tensor& stored,
                                         updater_state* state, const device_stream& s) const {
  optimizer_state& st = checked_state(k, stored, state);
  check_grad(k, merged, stored);
  ++st.count;
  apply_async(step_for(k, st.count), stored.dtype(), stored.data_unchecked(),
              merged.data_unchecked(), slot_pointers(st), stored.size(), s);
}

void elementwise_optimizer::apply_async(const step_values&, dtype, void*, const void*,
                                        const slot_ptrs&, std::size_t, const device_stream&) const {
  throw error{errc::unsupported, name_ + " runs on host memory only"};
}

void elementwise_optimizer::begin_update(const key& k, updater_state* state) const {
  ++state_of(k, state).count;
}

void elementwise_optimizer::update_range(const key& k, const tensor& merged, tensor& stored,
                                         updater_state* state, std::size_t begin,
                                         std::size_t end) const {
  // begin_update checked the state and counted this update.
  const auto& st = static_cast<const optimizer_state&>(*state);
  end = std::min(end, std::min(stored.size(), merged.size()));
  apply(step_for(k, st.count), stored.dtype(), stored.data_unchecked(), merged.data_unchecked(),
        slot_pointers(st), begin, end);
}

void elementwise_optimizer::update_rows(const key& k, const std::int64_t* rows,
                                        std::size_t num_rows, const tensor& grad_rows,
                                        tensor& stored, updater_state* state) const {
  if (!lazy_rows()) {
    updater::update_rows(k, rows, num_rows, grad_rows, stored, state);
    return;
  }
  optimizer_state& st = checked_state(k, stored, state);
  const dtype t = stored.dtype();
  if (grad_rows.dtype() != t)
    throw error{errc::dtype_mismatch, name_ + ": row gradient " + grad_rows.describe() +
                                          " for key " + k.to_string() + " whose weight is " +
                                          stored.describe()};
  if (stored.shape().ndim() == 0 || stored.shape()[0] <= 0)
    throw error{errc::invalid_argument, name_ + ": row update of key " + k.to_string() +
                                            " whose weight " + stored.describe() + " has no rows"};
  const auto dim0 = static_cast<std::size_t>(stored.shape()[0]);
  const std::size_t row_len = stored.size() / dim0;
  if (grad_rows.size() != num_rows * row_len)
    throw error{errc::shape_mismatch, name_ + ": " + std::to_string(num_rows) + " rows of key " +
                                          k.to_string() + " (weight " + stored.describe() +
                                          ") need " + std::to_string(num_rows * row_len) +
                                          " gradient elements, got " + grad_rows.describe()};
  for (std::size_t i = 0; i < num_rows; ++i) {
    if (rows[i] < 0 || static_cast<std::size_t>(rows[i]) >= dim0)
      throw error{errc::out_of_range, name_ + ": row " + std::to_string(rows[i]) + " of key " +
                                          k.to_string() + " outside [0, " + std::to_string(dim0) +
                                          ")"};
    if (i > 0 && rows[i] <= rows[i - 1])
      throw error{errc::invalid_argument,
                  name_ + ": row ids of key " + k.to_string() + " must be sorted and unique (" +
                      std::to_string(rows[i - 1]) + " then " + std::to_string(rows[i]) + ")"};
  }
  ++st.count;
  const step_values s = step_for(k, st.count);
  const std::size_t wbytes = row_len * size_of(t);
  const std::size_t sbytes = row_len * size_of(kernels::slot_dtype(t));
  auto* w = static_cast<char*>(stored.data_unchecked());
  const auto* g = static_cast<const char*>(grad_rows.data_unchecked());
  const slot_ptrs base = slot_pointers(st);
  for (std::size_t i = 0; i < num_rows; ++i) {
    const auto r = static_cast<std::size_t>(rows[i]);
    slot_ptrs sp{};
    for (std::size_t j = 0; j < st.slots.size(); ++j)
      sp[j] = static_cast<char*>(base[j]) + r * sbytes;
    apply(s, t, w + r * wbytes, g + i * wbytes, sp, 0, row_len);
  }
}

}  // namespace kvactor::detail::optim
