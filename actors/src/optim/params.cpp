#include "params.hpp"

#include <cmath>
#include <cstdio>

namespace kvactor::detail::optim {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

param_reader::param_reader(const optimizer_config& cfg, std::string type)
    : cfg_(cfg), type_(std::move(type)) {}

bool param_reader::has(const std::string& name) const {
  return cfg_.params.count(name) != 0;
}

void param_reader::fail(const std::string& what) const {
  throw config_error{type_ + ": " + what};
}

double param_reader::num(const std::string& name, double def) {
  known_.insert(name);
  const auto it = cfg_.params.find(name);
  if (it == cfg_.params.end()) return def;
  if (!std::isfinite(it->second)) fail(name + " must be finite, got " + fmt(it->second));
  return it->second;
}

double param_reader::at_least(const std::string& name, double def, double lo) {
  const double v = num(name, def);
  if (!(v >= lo)) fail(name + " must be >= " + fmt(lo) + ", got " + fmt(v));
  return v;
}

double param_reader::above(const std::string& name, double def, double lo) {
  const double v = num(name, def);
  if (!(v > lo)) fail(name + " must be > " + fmt(lo) + ", got " + fmt(v));
  return v;
}

double param_reader::unit(const std::string& name, double def) {
  const double v = num(name, def);
  if (!(v >= 0 && v < 1)) fail(name + " must be in [0, 1), got " + fmt(v));
  return v;
}

bool param_reader::flag(const std::string& name, bool def) {
  const double v = num(name, def ? 1.0 : 0.0);
  if (v != 0 && v != 1) fail(name + " must be 0 or 1, got " + fmt(v));
  return v == 1;
}

std::uint64_t param_reader::whole(const std::string& name, std::uint64_t def, std::uint64_t lo) {
  const double v = num(name, static_cast<double>(def));
  if (v != std::floor(v) || v < static_cast<double>(lo) || v > 9.0e15)
    fail(name + " must be a whole number >= " + std::to_string(lo) + ", got " + fmt(v));
  return static_cast<std::uint64_t>(v);
}

std::vector<std::pair<std::string, double>> param_reader::with_prefix(const std::string& prefix) {
  std::vector<std::pair<std::string, double>> out;
  for (auto it = cfg_.params.lower_bound(prefix);
       it != cfg_.params.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (it->first.size() == prefix.size()) continue;  // no suffix: left for finish() to reject
    out.emplace_back(it->first.substr(prefix.size()), num(it->first, 0));
  }
  return out;
}

void param_reader::finish() const {
  for (const auto& [name, value] : cfg_.params) {
    (void)value;
    if (!known_.count(name)) fail("no hyper-parameter \"" + name + "\"");
  }
}

}  // namespace kvactor::detail::optim
