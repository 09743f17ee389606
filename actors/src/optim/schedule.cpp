#include "schedule.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

namespace kvactor::detail::optim {

namespace {

constexpr double pi = 3.14159265358979323846;

const char* kind_name(lr_schedule::kind k) {
  switch (k) {
    case lr_schedule::kind::none:
      return "0 (none)";
    case lr_schedule::kind::factor:
      return "1 (factor)";
    case lr_schedule::kind::multifactor:
      return "2 (multifactor)";
    case lr_schedule::kind::poly:
      return "3 (poly)";
    case lr_schedule::kind::cosine:
      return "4 (cosine)";
  }
  return "?";
}

}  // namespace

double lr_schedule::operator()(std::uint64_t n) const {
  if (type == kind::none) return base_lr;
  if (n < warmup_steps) {
    if (warmup_constant) return warmup_begin_lr;
    return warmup_begin_lr +
           (base_lr - warmup_begin_lr) * static_cast<double>(n) / static_cast<double>(warmup_steps);
  }
  switch (type) {
    case kind::factor: {
      // MXNet multiplies by factor each time num_update passes count + step, count starting at
      // 0: k = floor((n - 1) / step) times, clamping at stop_factor_lr once below it.
      const std::uint64_t k = n == 0 ? 0 : (n - 1) / step;
      double lr = base_lr;
      if (k == 0) return lr;
      if (k <= 4096) {
        for (std::uint64_t i = 0; i < k && lr >= stop_factor_lr; ++i)
          lr *= factor;
      } else {
        lr *= std::pow(factor, static_cast<double>(k));
      }
      return std::max(lr, stop_factor_lr);
    }
    case kind::multifactor: {
      double lr = base_lr;
      for (const std::uint64_t s : steps)
        if (n > s) lr *= factor;
      return lr;
    }
    case kind::poly:
    case kind::cosine: {
      // After max_update MXNet keeps the rate of its last call, the value at max_update.
      const double done = static_cast<double>(std::min(n, max_update) - warmup_steps);
      const double span = static_cast<double>(max_update - warmup_steps);
      if (type == kind::poly)
        return final_lr + (base_lr - final_lr) * std::pow(1.0 - done / span, pwr);
      return final_lr + (base_lr - final_lr) * (1.0 + std::cos(pi * done / span)) / 2.0;
    }
    case kind::none:
      break;
  }
  return base_lr;
}

lr_schedule lr_schedule::read(param_reader& r, double base_lr) {
  lr_schedule s;
  s.base_lr = base_lr;
  const std::uint64_t t = r.whole("lr_scheduler", 0, 0);
  if (t > 4)
    r.fail(
        "lr_scheduler must be 0 (none), 1 (factor), 2 (multifactor), 3 (poly) or "
        "4 (cosine), got " +
        std::to_string(t));
  s.type = static_cast<kind>(t);

  // Which lr_scheduler.* names this kind takes; anything else under the prefix is an error.
  std::set<std::string> allowed;
  if (s.type != kind::none) allowed = {"warmup_steps", "warmup_begin_lr", "warmup_mode"};
  const std::string p = "lr_scheduler.";
  switch (s.type) {
    case kind::none:
      break;
    case kind::factor:
      allowed.insert({"step", "factor", "stop_factor_lr"});
      if (!r.has(p + "step")) r.fail("lr_scheduler 1 (factor) needs lr_scheduler.step");
      s.step = r.whole(p + "step", 1, 1);
      s.factor = r.num(p + "factor", 1.0);
      if (!(s.factor > 0 && s.factor <= 1))
        r.fail(p + "factor must be in (0, 1], got " + fmt(s.factor));
      s.stop_factor_lr = r.at_least(p + "stop_factor_lr", 1e-8, 0.0);
      break;
    case kind::multifactor: {
      allowed.insert("factor");
      s.factor = r.num(p + "factor", 1.0);
      if (!(s.factor > 0 && s.factor <= 1))
        r.fail(p + "factor must be in (0, 1], got " + fmt(s.factor));
      for (std::size_t i = 0;; ++i) {
        const std::string name = p + "step." + std::to_string(i);
        if (!r.has(name)) break;
        allowed.insert("step." + std::to_string(i));
        const std::uint64_t v = r.whole(name, 1, 1);
        if (!s.steps.empty() && v <= s.steps.back())
          r.fail(name + " must be greater than the step before it (" +
                 std::to_string(s.steps.back()) + "), got " + std::to_string(v));
        s.steps.push_back(v);
      }
      if (s.steps.empty())
        r.fail("lr_scheduler 2 (multifactor) needs lr_scheduler.step.0, lr_scheduler.step.1, ...");
      break;
    }
    case kind::poly:
    case kind::cosine:
      allowed.insert({"max_update", "final_lr"});
      if (s.type == kind::poly) {
        allowed.insert("pwr");
        s.pwr = r.num(p + "pwr", 2.0);
      }
      if (!r.has(p + "max_update"))
        r.fail(std::string{"lr_scheduler "} + kind_name(s.type) + " needs lr_scheduler.max_update");
      s.max_update = r.whole(p + "max_update", 1, 1);
      s.final_lr = r.num(p + "final_lr", 0.0);
      break;
  }
  if (s.type != kind::none) {
    s.warmup_steps = r.whole(p + "warmup_steps", 0, 0);
    s.warmup_begin_lr = r.at_least(p + "warmup_begin_lr", 0.0, 0.0);
    if (s.warmup_begin_lr > base_lr)
      r.fail(p + "warmup_begin_lr must be <= learning_rate (" + fmt(base_lr) + "), got " +
             fmt(s.warmup_begin_lr));
    const std::uint64_t mode = r.whole(p + "warmup_mode", 0, 0);
    if (mode > 1)
      r.fail(p + "warmup_mode must be 0 (linear) or 1 (constant), got " + std::to_string(mode));
    s.warmup_constant = mode == 1;
    if ((s.type == kind::poly || s.type == kind::cosine) && s.max_update <= s.warmup_steps)
      r.fail(p + "max_update must be > lr_scheduler.warmup_steps (" +
             std::to_string(s.warmup_steps) + "), got " + std::to_string(s.max_update));
  }
  for (const auto& [suffix, value] : r.with_prefix(p)) {
    (void)value;
    if (!allowed.count(suffix))
      r.fail(p + suffix + " is not a parameter of lr_scheduler " + kind_name(s.type));
  }
  return s;
}

}  // namespace kvactor::detail::optim
