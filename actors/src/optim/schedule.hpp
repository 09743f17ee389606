// Learning-rate schedules: MXNet 1.x's lr_scheduler.py (Factor, MultiFactor, Poly, Cosine, each
// with linear or constant warmup) as pure functions of the update count. The parameter names
// are in actors/src/optimizers.hpp.
// Thread-safety: a value type; operator() is const and pure.
#pragma once

#include <cstdint>
#include <vector>

#include "params.hpp"

namespace kvactor::detail::optim {

struct lr_schedule {
  enum class kind : int { none = 0, factor = 1, multifactor = 2, poly = 3, cosine = 4 };

  kind type = kind::none;
  double base_lr = 0.01;
  // factor
  std::uint64_t step = 1;
  double factor = 1.0;
  double stop_factor_lr = 1e-8;
  // multifactor
  std::vector<std::uint64_t> steps;
  // poly, cosine
  std::uint64_t max_update = 1;
  double pwr = 2.0;
  double final_lr = 0.0;
  // warmup
  std::uint64_t warmup_steps = 0;
  double warmup_begin_lr = 0.0;
  bool warmup_constant = false;

  /// The learning rate for update number num_update (1 for the first update).
  double operator()(std::uint64_t num_update) const;

  /// Reads lr_scheduler and lr_scheduler.* (every one of them, so finish() accepts them).
  static lr_schedule read(param_reader& r, double base_lr);
};

}  // namespace kvactor::detail::optim
