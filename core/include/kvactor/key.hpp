// Keys: an int64 or a string, as in MXNet. One store never mixes the two kinds.
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>

namespace kvactor {

class key {
 public:
  key() : v_(std::int64_t{0}) {}
  // Implicit by design: callers name keys by their integers and strings, as MXNet's do.
  // NOLINTBEGIN(google-explicit-constructor)
  key(std::int64_t k) : v_(k) {}
  key(int k) : v_(std::int64_t{k}) {}
  key(std::string k) : v_(std::move(k)) {}
  key(const char* k) : v_(std::string{k}) {}
  key(std::string_view k) : v_(std::string{k}) {}
  // NOLINTEND(google-explicit-constructor)

  bool is_string() const noexcept { return v_.index() == 1; }
  bool is_int() const noexcept { return v_.index() == 0; }
  std::int64_t as_int() const { return std::get<0>(v_); }
  const std::string& as_string() const { return std::get<1>(v_); }

  /// Ints print as digits, strings quoted: 7 or "weight".
  std::string to_string() const;

  friend bool operator==(const key& a, const key& b) { return a.v_ == b.v_; }
  friend bool operator!=(const key& a, const key& b) { return !(a == b); }
  friend bool operator<(const key& a, const key& b) { return a.v_ < b.v_; }

  std::size_t hash() const noexcept;

 private:
  std::variant<std::int64_t, std::string> v_;
};

}  // namespace kvactor

template <>
struct std::hash<kvactor::key> {
  std::size_t operator()(const kvactor::key& k) const noexcept { return k.hash(); }
};
