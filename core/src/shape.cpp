#include "kvactor/shape.hpp"

#include <limits>

namespace kvactor {

std::int64_t shape::numel() const noexcept {
  if (dims_.empty()) return 0;
  std::int64_t n = 1;
  for (auto d : dims_) {
    if (d <= 0) return 0;
    if (n > std::numeric_limits<std::int64_t>::max() / d) return 0;  // overflow: not a tensor
    n *= d;
  }
  return n;
}

bool shape::is_valid_nonempty() const noexcept {
  return numel() > 0;
}

std::string shape::to_string() const {
  std::string s = "(";
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  if (dims_.size() == 1) s += ",";
  return s + ")";
}

}  // namespace kvactor
