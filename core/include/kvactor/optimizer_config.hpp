// The optimizer as data: a type name and named numeric hyper-parameters. This is what
// set_optimizer takes and what dist stores send to servers — never code. Its wire encoding is
// in serialization/ (kvactor/serialization/optimizer_config.hpp).
// Thread-safety: a value type.
#pragma once

#include <map>
#include <string>

namespace kvactor {

struct optimizer_config {
  /// "sgd", "nag", "adam", "adagrad", "rmsprop", "adadelta", "ftrl", "signum", "lamb".
  std::string type;
  /// MXNet's names: learning_rate, momentum, wd, rescale_grad, clip_gradient, ... (see
  /// actors/src/optimizers.hpp for every type's, the schedulers' and the per-key multipliers').
  std::map<std::string, double> params;

  /// params[name], or fallback when absent.
  double get(const std::string& name, double fallback) const;

  friend bool operator==(const optimizer_config& a, const optimizer_config& b) {
    return a.type == b.type && a.params == b.params;
  }
};

/// MXNet's SGD defaults: learning_rate 0.01, momentum 0, wd 0, rescale_grad 1, no clipping
/// (clip_gradient < 0).
optimizer_config sgd_config(double learning_rate = 0.01, double momentum = 0.0, double wd = 0.0,
                            double rescale_grad = 1.0, double clip_gradient = -1.0);

}  // namespace kvactor
