// Where a tensor lives. Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>

namespace kvactor {

class device {
 public:
  enum class kind : std::uint8_t { cpu, cuda };

  constexpr device() noexcept = default;
  static constexpr device cpu() noexcept { return device{kind::cpu, 0}; }
  /// cuda:N; tensors there need a build with KVACTOR_ENABLE_CUDA and a GPU.
  static constexpr device cuda(int index) noexcept { return device{kind::cuda, index}; }

  constexpr kind type() const noexcept { return kind_; }
  constexpr int index() const noexcept { return index_; }
  constexpr bool is_cpu() const noexcept { return kind_ == kind::cpu; }

  /// "cpu(0)" or "cuda(1)", as MXNet prints contexts.
  std::string to_string() const;

  friend constexpr bool operator==(device a, device b) noexcept {
    return a.kind_ == b.kind_ && a.index_ == b.index_;
  }
  friend constexpr bool operator!=(device a, device b) noexcept { return !(a == b); }

 private:
  constexpr device(kind k, int i) noexcept : kind_(k), index_(i) {}
  kind kind_ = kind::cpu;
  int index_ = 0;
};

}  // namespace kvactor
