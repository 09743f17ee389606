// Tensor shapes. Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kvactor {

class shape {
 public:
  shape() = default;
  shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  std::size_t ndim() const noexcept { return dims_.size(); }
  std::int64_t operator[](std::size_t i) const { return dims_[i]; }
  const std::vector<std::int64_t>& dims() const noexcept { return dims_; }
  /// Product of the dims; 0 when ndim() == 0 or any dim is 0.
  std::int64_t numel() const noexcept;
  /// True when every dim is positive and there is at least one.
  bool is_valid_nonempty() const noexcept;

  /// "(2, 3)"
  std::string to_string() const;

  friend bool operator==(const shape& a, const shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const shape& a, const shape& b) { return !(a == b); }

 private:
  std::vector<std::int64_t> dims_;
};

}  // namespace kvactor
