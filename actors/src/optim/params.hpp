// Reading an optimizer_config's parameters: every name read is marked known, finish() rejects
// the rest; values are checked (finite, range, whole, boolean). Failures throw config_error,
// which make_optimizer turns into invalid_argument.
// Thread-safety: a reader is used by one thread while building one optimizer.
#pragma once

#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kvactor/optimizer_config.hpp"

namespace kvactor::detail::optim {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// "%g" of a double.
std::string fmt(double v);

class param_reader {
 public:
  /// type is the canonical (lower-case) optimizer name used in messages.
  param_reader(const optimizer_config& cfg, std::string type);

  const std::string& type() const noexcept { return type_; }
  bool has(const std::string& name) const;

  /// params[name] or def; finite.
  double num(const std::string& name, double def);
  /// ... and >= lo.
  double at_least(const std::string& name, double def, double lo);
  /// ... and > lo.
  double above(const std::string& name, double def, double lo);
  /// ... in [0, 1).
  double unit(const std::string& name, double def);
  /// 0 or 1.
  bool flag(const std::string& name, bool def);
  /// A whole number >= lo.
  std::uint64_t whole(const std::string& name, std::uint64_t def, std::uint64_t lo);
  /// Every parameter named prefix + suffix (suffix non-empty), marked known, in name order.
  std::vector<std::pair<std::string, double>> with_prefix(const std::string& prefix);

  /// Throws for the first parameter nothing asked for.
  void finish() const;
  [[noreturn]] void fail(const std::string& what) const;

 private:
  const optimizer_config& cfg_;
  std::string type_;
  std::set<std::string> known_;
};

}  // namespace kvactor::detail::optim
