// Private to device/src/cpu: how each storage type is computed on, shared by the kernel TUs.
// arith<T>::type is the arithmetic type (float for the 16-bit floats, which are converted in
// and rounded back out once per value), in() / out() the conversions.
#pragma once

#include <cstdint>

#include "kvactor/dtype.hpp"

namespace kvactor::kernels::detail {

template <class T>
struct arith {
  using type = T;
  static T in(T x) noexcept { return x; }
  static T out(T x) noexcept { return x; }
};
template <>
struct arith<float16> {
  using type = float;
  static float in(float16 x) noexcept { return to_float(x); }
  static float16 out(float x) noexcept { return to_float16(x); }
};
template <>
struct arith<bfloat16> {
  using type = float;
  static float in(bfloat16 x) noexcept { return to_float(x); }
  static bfloat16 out(float x) noexcept { return to_bfloat16(x); }
};
// Signed integer sums wrap: compute on the unsigned type of the same width.
template <>
struct arith<std::int32_t> {
  using type = std::uint32_t;
  static std::uint32_t in(std::int32_t x) noexcept { return static_cast<std::uint32_t>(x); }
  static std::int32_t out(std::uint32_t x) noexcept { return static_cast<std::int32_t>(x); }
};
template <>
struct arith<std::int64_t> {
  using type = std::uint64_t;
  static std::uint64_t in(std::int64_t x) noexcept { return static_cast<std::uint64_t>(x); }
  static std::int64_t out(std::uint64_t x) noexcept { return static_cast<std::int64_t>(x); }
};
template <>
struct arith<std::uint8_t> {
  using type = std::uint32_t;
  static std::uint32_t in(std::uint8_t x) noexcept { return x; }
  static std::uint8_t out(std::uint32_t x) noexcept { return static_cast<std::uint8_t>(x); }
};

// ---- optimizer kernels ----

/// MXNet's clip: the value itself when inside [-c, c] (NaN stays NaN).
template <class F>
inline F clip(F x, F c) noexcept {
  return x > c ? c : (x < -c ? -c : x);
}

/// -1, 0 or +1 (0 for NaN), as MXNet's sign.
template <class F>
inline F sign(F x) noexcept {
  return static_cast<F>((x > F(0)) - (x < F(0)));
}

/// Calls f(W{}) with the C++ type of a floating weight dtype and returns true; false (and no
/// call) for integer dtypes, which optimizers leave alone.
template <class Fn>
inline bool visit_floating(dtype t, Fn&& f) {
  switch (t) {
    case dtype::float32:
      f(float{});
      return true;
    case dtype::float64:
      f(double{});
      return true;
    case dtype::float16:
      f(float16{});
      return true;
    case dtype::bfloat16:
      f(bfloat16{});
      return true;
    default:
      return false;
  }
}

/// The slot (state) element type for weights of type W: the arithmetic type.
template <class W>
using slot_t = typename arith<W>::type;

}  // namespace kvactor::kernels::detail
