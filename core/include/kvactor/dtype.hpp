// Element types, their sizes and names, and the 16-bit float formats as plain storage types.
// Thread-safety: values and pure functions only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iosfwd>
#include <optional>
#include <string_view>

namespace kvactor {

enum class dtype : std::uint8_t { float32, float16, bfloat16, float64, int32, int64, uint8 };

inline constexpr dtype all_dtypes[] = {dtype::float32, dtype::float16, dtype::bfloat16,
                                       dtype::float64, dtype::int32,   dtype::int64,
                                       dtype::uint8};

constexpr std::size_t size_of(dtype t) noexcept {
  switch (t) {
    case dtype::float32:
    case dtype::int32:
      return 4;
    case dtype::float16:
    case dtype::bfloat16:
      return 2;
    case dtype::float64:
    case dtype::int64:
      return 8;
    case dtype::uint8:
      return 1;
  }
  return 0;
}

/// MXNet/NumPy spelling: "float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8".
const char* to_string(dtype t) noexcept;
/// Inverse of to_string; nullopt for an unknown name.
std::optional<dtype> parse_dtype(std::string_view name) noexcept;
/// Writes to_string(t), so that dtypes print by name (GoogleTest parameters and failures too).
std::ostream& operator<<(std::ostream& os, dtype t);

constexpr bool is_floating(dtype t) noexcept {
  return t == dtype::float32 || t == dtype::float16 || t == dtype::bfloat16 || t == dtype::float64;
}

/// IEEE 754 binary16, stored as bits. Arithmetic happens in float.
struct float16 {
  std::uint16_t bits = 0;
};
/// bfloat16 (the upper half of a binary32), stored as bits. Arithmetic happens in float.
struct bfloat16 {
  std::uint16_t bits = 0;
};

float to_float(float16 h) noexcept;
/// Round to nearest even; overflow gives infinity, NaN stays NaN.
float16 to_float16(float f) noexcept;

inline float to_float(bfloat16 b) noexcept {
  std::uint32_t u = static_cast<std::uint32_t>(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
/// Round to nearest even; NaN stays a quiet NaN.
inline bfloat16 to_bfloat16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return bfloat16{static_cast<std::uint16_t>((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bfloat16{static_cast<std::uint16_t>(u >> 16)};
}

/// Maps a C++ element type to its dtype.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr dtype value = dtype::float32;
};
template <>
struct dtype_of<float16> {
  static constexpr dtype value = dtype::float16;
};
template <>
struct dtype_of<bfloat16> {
  static constexpr dtype value = dtype::bfloat16;
};
template <>
struct dtype_of<double> {
  static constexpr dtype value = dtype::float64;
};
template <>
struct dtype_of<std::int32_t> {
  static constexpr dtype value = dtype::int32;
};
template <>
struct dtype_of<std::int64_t> {
  static constexpr dtype value = dtype::int64;
};
template <>
struct dtype_of<std::uint8_t> {
  static constexpr dtype value = dtype::uint8;
};
template <class T>
inline constexpr dtype dtype_of_v = dtype_of<T>::value;

/// Calls f(T{}) with the C++ element type of t.
template <class F>
decltype(auto) visit_dtype(dtype t, F&& f) {
  switch (t) {
    case dtype::float32:
      return f(float{});
    case dtype::float16:
      return f(float16{});
    case dtype::bfloat16:
      return f(bfloat16{});
    case dtype::float64:
      return f(double{});
    case dtype::int32:
      return f(std::int32_t{});
    case dtype::int64:
      return f(std::int64_t{});
    case dtype::uint8:
      break;
  }
  return f(std::uint8_t{});
}

}  // namespace kvactor
