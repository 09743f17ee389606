#include "kvactor/shape.hpp"

#include <algorithm>
#include <limits>

namespace kvactor {

void shape::assign(const std::int64_t* d, std::size_t n) {
  n_ = n;
  if (n <= inline_dims)
    std::copy(d, d + n, small_.begin());
  else
    big_.assign(d, d + n);
}

bool operator==(const shape& a, const shape& b) noexcept {
  return a.n_ == b.n_ && std::equal(a.data(), a.data() + a.n_, b.data());
}

std::int64_t shape::numel() const noexcept {
  if (n_ == 0) return 0;
  std::int64_t n = 1;
  for (auto d : dims()) {
    if (d <= 0) return 0;
    // Overflow: not a tensor. (A multiply with its overflow flag: a division per dimension
    // showed up in every operation's profile.)
    if (__builtin_mul_overflow(n, d, &n)) return 0;
  }
  return n;
}

bool shape::is_valid_nonempty() const noexcept {
  return numel() > 0;
}

std::string shape::to_string() const {
  std::string s = "(";
  for (std::size_t i = 0; i < n_; ++i) {
    if (i) s += ", ";
    s += std::to_string((*this)[i]);
  }
  if (n_ == 1) s += ",";
  return s + ")";
}

}  // namespace kvactor
