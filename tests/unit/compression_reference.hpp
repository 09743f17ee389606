// The test side of the gradient compression tests (compression_test.cpp,
// compression_reference_test.cpp): a straightforward per-element reference written from the
// documented byte layout (bytes, not words, so the tests do not share the kernels' masks),
// byte and float comparisons, and runners over the whole array and every CPU code path.
// Thread-safety: functions without state, except for_each_cpu_path (it switches the kernels'
// process-wide code path: the test thread only).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kvactor/detail/compression.hpp"

namespace kvactor::compression_reference {

namespace gc = compression;

constexpr float inf = std::numeric_limits<float>::infinity();
inline const float nan_f = std::numeric_limits<float>::quiet_NaN();

inline std::vector<std::uint8_t> bytes_of(const std::vector<std::uint32_t>& words) {
  std::vector<std::uint8_t> b(words.size() * 4);
  if (!words.empty()) std::memcpy(b.data(), words.data(), b.size());
  return b;
}

// Words whose in-memory bytes are b (the layout is defined on bytes).
inline std::vector<std::uint32_t> words_of(const std::vector<std::uint8_t>& b) {
  std::vector<std::uint32_t> w(b.size() / 4);
  if (!w.empty()) std::memcpy(w.data(), b.data(), b.size());
  return w;
}

// Little-endian word values (as written in the header's examples) → bytes.
inline std::vector<std::uint8_t> le_bytes(std::initializer_list<std::uint32_t> values) {
  std::vector<std::uint8_t> b;
  for (std::uint32_t v : values)
    for (int k = 0; k < 4; ++k)
      b.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
  return b;
}

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// ---------------------------------------------------------------- the documented reference

// 2-bit: element i in byte i/4, pair at bits 7-2c (high) and 6-2c (low), c = i%4;
// 11 = +t, 10 = -t, 00 = 0 (01 reads as 0).
inline unsigned ref_code2(const std::vector<std::uint8_t>& b, std::size_t i) {
  return (b[i / 4] >> (6 - 2 * (i % 4))) & 3u;
}
// 1-bit: element i in byte i/8, bit 7 - i%8; 1 = +1, 0 = -1.
inline unsigned ref_bit1(const std::vector<std::uint8_t>& b, std::size_t i) {
  return (b[i / 8] >> (7 - i % 8)) & 1u;
}

inline std::size_t ref_words(gc::kind k, std::size_t n) {
  const std::size_t e = k == gc::kind::two_bit ? 16 : k == gc::kind::one_bit ? 32 : 1;
  return (n + e - 1) / e;
}

// Quantizes like MXNet's per-element loops: residual += grad, then compare and adjust.
inline std::vector<std::uint8_t> ref_quantize(const gc::params& p, const std::vector<float>& grad,
                                              std::vector<float>& residual) {
  const std::size_t n = grad.size();
  std::vector<std::uint8_t> b(ref_words(p.type, n) * 4, 0);
  const float t = p.threshold;
  for (std::size_t i = 0; i < n; ++i) {
    float r = residual[i];
    r += grad[i];
    if (p.type == gc::kind::two_bit) {
      unsigned code = 0;
      if (r >= t) {
        code = 3;
        r -= t;
      } else if (r <= -t) {
        code = 2;
        r += t;
      }
      b[i / 4] = static_cast<std::uint8_t>(b[i / 4] | (code << (6 - 2 * (i % 4))));
    } else {
      if (r > t) {
        b[i / 8] = static_cast<std::uint8_t>(b[i / 8] | (1u << (7 - i % 8)));
        r -= 1.0f;
      } else {
        r += 1.0f;
      }
    }
    residual[i] = r;
  }
  return b;
}

inline float ref_decoded(const gc::params& p, const std::vector<std::uint8_t>& b, std::size_t i) {
  if (p.type == gc::kind::two_bit) {
    switch (ref_code2(b, i)) {
      case 3:
        return p.threshold;
      case 2:
        return -p.threshold;
      default:
        return 0.0f;
    }
  }
  return ref_bit1(b, i) ? 1.0f : -1.0f;
}

// Same bits, NaN matching any NaN.
inline ::testing::AssertionResult same_floats(const std::vector<float>& got,
                                              const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (!both_nan && bits_of(got[i]) != bits_of(want[i]))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << got[i] << " (0x" << std::hex << bits_of(got[i])
             << "), want " << std::dec << want[i] << " (0x" << std::hex << bits_of(want[i]) << ")";
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult same_bytes(const std::vector<std::uint8_t>& got,
                                             const std::vector<std::uint8_t>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return ::testing::AssertionFailure() << "byte " << i << ": got 0x" << std::hex
                                           << unsigned(got[i]) << ", want 0x" << unsigned(want[i]);
  return ::testing::AssertionSuccess();
}

// The kernel over the whole array; the words start as garbage so that unwritten bits show.
inline std::vector<std::uint32_t> quantize_all(const gc::params& p, const std::vector<float>& grad,
                                               std::vector<float>& residual) {
  const std::size_t n = grad.size();
  std::vector<std::uint32_t> w(gc::words(p.type, n), 0xA5A5A5A5u);
  gc::quantize(p, grad.data(), residual.data(), w.data(), n, 0, w.size());
  return w;
}

inline std::vector<float> dequantize_all(const gc::params& p, const std::vector<std::uint32_t>& w,
                                         std::size_t n) {
  std::vector<float> out(n, 12345.0f);
  gc::dequantize(p, w.data(), out.data(), n, 0, w.size());
  return out;
}

// Gradients of mixed magnitudes, some exactly +-t and some at exactly representable sums.
inline std::vector<float> random_grad(std::size_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, scale);
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<float> g(n);
  for (auto& x : g) {
    switch (pick(rng)) {
      case 0:
        x = scale;
        break;
      case 1:
        x = -scale;
        break;
      case 2:
        x = 0.0f;
        break;
      default:
        x = d(rng);
    }
  }
  return g;
}

// Runs body on every CPU code path the kernels have here (the CPU's best, then generic).
template <class Body>
void for_each_cpu_path(Body&& body) {
  for (bool generic : {false, true}) {
    gc::detail::force_generic(generic);
    SCOPED_TRACE(std::string("cpu path ") + gc::detail::cpu_path());
    body();
  }
  gc::detail::force_generic(false);
}

}  // namespace kvactor::compression_reference
