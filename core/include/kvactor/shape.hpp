// Tensor shapes. Thread-safety: a value type.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace kvactor {

class shape {
 public:
  /// Up to this many dims live inside the shape: creating or copying such a shape (every
  /// tensor copy copies one) allocates nothing. More dims go to the heap.
  static constexpr std::size_t inline_dims = 6;

  /// The dims, read-only; valid while the shape lives and is not assigned to.
  class dims_view {
   public:
    dims_view(const std::int64_t* b, std::size_t n) noexcept : b_(b), n_(n) {}
    const std::int64_t* begin() const noexcept { return b_; }
    const std::int64_t* end() const noexcept { return b_ + n_; }
    const std::int64_t* data() const noexcept { return b_; }
    std::size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    std::int64_t operator[](std::size_t i) const noexcept { return b_[i]; }
    // A copy wherever a vector is wanted, as when dims() returned one.
    // NOLINTNEXTLINE(google-explicit-constructor)
    operator std::vector<std::int64_t>() const { return {b_, b_ + n_}; }
    friend bool operator==(const dims_view& a, const std::vector<std::int64_t>& b) noexcept {
      return std::vector<std::int64_t>::size_type(a.n_) == b.size() &&
             std::equal(a.begin(), a.end(), b.begin());
    }

   private:
    const std::int64_t* b_;
    std::size_t n_;
  };

  shape() noexcept = default;
  shape(std::initializer_list<std::int64_t> dims) { assign(dims.begin(), dims.size()); }
  explicit shape(const std::vector<std::int64_t>& dims) { assign(dims.data(), dims.size()); }
  /// n dims read from elsewhere (a NumPy or DLPack array's), without a vector in between.
  shape(const std::int64_t* dims, std::size_t n) { assign(dims, n); }

  std::size_t ndim() const noexcept { return n_; }
  std::int64_t operator[](std::size_t i) const noexcept { return data()[i]; }
  dims_view dims() const noexcept { return {data(), n_}; }
  /// Product of the dims; 0 when ndim() == 0 or any dim is 0.
  std::int64_t numel() const noexcept;
  /// True when every dim is positive and there is at least one.
  bool is_valid_nonempty() const noexcept;

  /// "(2, 3)"
  std::string to_string() const;

  friend bool operator==(const shape& a, const shape& b) noexcept;
  friend bool operator!=(const shape& a, const shape& b) noexcept { return !(a == b); }

 private:
  const std::int64_t* data() const noexcept {
    return n_ <= inline_dims ? small_.data() : big_.data();
  }
  void assign(const std::int64_t* d, std::size_t n);

  std::array<std::int64_t, inline_dims> small_{};
  std::size_t n_ = 0;
  std::vector<std::int64_t> big_;  // only beyond inline_dims
};

}  // namespace kvactor
