// What every built-in optimizer shares: the common hyper-parameters (learning rate and its
// schedule, wd, rescale_grad, clip_gradient, per-key multipliers), the per-key state
// (kvactor::optimizer_state: count + slots) and, for element-wise optimizers, the update,
// range and row paths around one kernel call.
// Thread-safety: optimizers are immutable after construction; shards may share one.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "kvactor/optimizer_state.hpp"
#include "kvactor/updater.hpp"
#include "params.hpp"
#include "schedule.hpp"

namespace kvactor::detail::optim {

struct common_params {
  double learning_rate = 0.01;
  double wd = 0.0;
  float rescale_grad = 1.0f;
  float clip_gradient = -1.0f;  ///< as the kernels take it: < 0 is off
  lr_schedule schedule;
  std::unordered_map<std::string, double> lr_mult, wd_mult;

  /// Reads learning_rate / lr, wd, rescale_grad, clip_gradient, lr_scheduler*, lr_mult.*,
  /// wd_mult.*.
  static common_params read(param_reader& r, double default_lr);

  /// schedule(count) * lr_mult of k.
  double lr_for(const key& k, std::uint64_t count) const;
  /// wd * wd_mult of k.
  double wd_for(const key& k) const;
};

/// lr_mult / wd_mult spelling of a key: ints in decimal, strings as they are.
std::string mult_name(const key& k);

/// Raw pointers to a state's slots (the most any optimizer keeps: centered rmsprop's 3).
using slot_ptrs = std::array<void*, 3>;

/// The values of one update of one key.
struct step_values {
  std::uint64_t t;  ///< the key's update count, this update included
  double lr;
  double wd;
};

class optimizer_base : public updater {
 public:
  optimizer_base(std::string name, common_params c);

  /// An optimizer_state with num_slots() zero slots shaped like `stored`, of
  /// kernels::slot_dtype(stored.dtype()). Throws unsupported for integer weights.
  std::unique_ptr<updater_state> make_state(const key& k, const tensor& stored) const override;

  const std::string& name() const noexcept { return name_; }
  const common_params& common() const noexcept { return common_; }

 protected:
  virtual std::size_t num_slots() const = 0;

  step_values step_for(const key& k, std::uint64_t count) const;

  /// The state as an optimizer_state with num_slots() slots (throws otherwise).
  optimizer_state& state_of(const key& k, updater_state* s) const;
  /// ... whose slots also match `stored` in size and slot dtype; stored is a floating tensor.
  optimizer_state& checked_state(const key& k, const tensor& stored, updater_state* s) const;
  /// merged matches stored in size and dtype.
  void check_grad(const key& k, const tensor& merged, const tensor& stored) const;

  std::string name_;
  common_params common_;
};

/// Optimizers whose update is element-wise: one kernel call on a range of every tensor.
class elementwise_optimizer : public optimizer_base {
 public:
  using optimizer_base::optimizer_base;

  void update(const key& k, const tensor& merged, tensor& stored,
              updater_state* state) const override;
  bool element_wise() const override { return true; }
  void update_async(const key& k, const tensor& merged, tensor& stored, updater_state* state,
                    const device_stream& s) const override;
  void begin_update(const key& k, updater_state* state) const override;
  void update_range(const key& k, const tensor& merged, tensor& stored, updater_state* state,
                    std::size_t begin, std::size_t end) const override;
  void update_rows(const key& k, const std::int64_t* rows, std::size_t num_rows,
                   const tensor& grad_rows, tensor& stored, updater_state* state) const override;

 protected:
  /// One update of elements [b, e): weight w and gradient g of dtype t, slots of
  /// kernels::slot_dtype(t). Runs concurrently on disjoint ranges; must not throw.
  virtual void apply(const step_values& s, dtype t, void* w, const void* g, const slot_ptrs& slots,
                     std::size_t b, std::size_t e) const noexcept = 0;
  /// The same update of all n elements, enqueued on a device stream (pointers on its device).
  /// Optimizers that override it say device_capable().
  virtual void apply_async(const step_values& s, dtype t, void* w, const void* g,
                           const slot_ptrs& slots, std::size_t n, const device_stream& st) const;
};

}  // namespace kvactor::detail::optim
