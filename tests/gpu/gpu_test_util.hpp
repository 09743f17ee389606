// Helpers of the gpu-labelled tests: logical devices, host <-> device buffers, random data with
// special values, and bitwise comparison that lets NaNs differ in sign and payload.
//
// Logical devices. The tests use two devices where the machine has them, and map a second
// logical device onto cuda(0) where it has one GPU, so that multi-device paths (copies between
// devices, values on several devices) run with a single physical GPU.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_memory.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/dtype.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor::gputest {

/// Logical device i of two: cuda(i) when the machine has it, else cuda(0).
inline device logical_device(int i) {
  const int count = cuda_device_count();
  return device::cuda(i < count ? i : 0);
}

/// min(2, count) logical devices, at least two entries (the second may be cuda(0) again).
inline std::vector<device> logical_devices() {
  return {logical_device(0), logical_device(1)};
}

/// Device memory of `bytes` bytes with a pointer `offset` bytes into it (to test unaligned
/// pointers); keeps the buffer alive.
struct dev_buffer {
  std::shared_ptr<buffer> buf;
  std::size_t offset = 0;
  std::size_t bytes = 0;
  device where;

  dev_buffer() = default;
  dev_buffer(device d, std::size_t n_bytes, std::size_t off = 0)
      : buf(device_pool::of(d).acquire(n_bytes + off)), offset(off), bytes(n_bytes), where(d) {}
  void* ptr() const { return static_cast<char*>(buf->data()) + offset; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr());
  }
};

/// Blocking copies through the public async API on stream s.
inline void upload(const device_stream& s, const dev_buffer& dst, const void* host,
                   std::size_t bytes) {
  device_kernels::copy_async(s, dst.ptr(), dst.where, host, device::cpu(), bytes);
  synchronize(s);
}
inline void download(const device_stream& s, void* host, const dev_buffer& src, std::size_t bytes) {
  device_kernels::copy_async(s, host, device::cpu(), src.ptr(), src.where, bytes);
  synchronize(s);
}
template <class V>
void upload(const device_stream& s, const dev_buffer& dst, const std::vector<V>& host) {
  upload(s, dst, host.data(), host.size() * sizeof(V));
}
template <class V>
std::vector<V> download(const device_stream& s, const dev_buffer& src, std::size_t count) {
  std::vector<V> v(count);
  download(s, v.data(), src, count * sizeof(V));
  return v;
}

/// Random bytes for n elements of t: mostly ordinary values, and for floating types a sprinkle
/// of specials (±0, ±inf, NaN, subnormals, huge and tiny values).
inline std::vector<unsigned char> random_elements(dtype t, std::size_t n, std::uint32_t seed,
                                                  bool specials = true) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uni(-4.0, 4.0);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<unsigned char> out(n * size_of(t));
  const double special_values[] = {0.0,    -0.0,   INFINITY, -INFINITY, NAN,     1e-40,
                                   -3e-39, 1e-8,   6.0e-5,   65504.0,   70000.0, 3.0e38,
                                   1e300,  -1e300, 0.5,      -0.5};
  for (std::size_t i = 0; i < n; ++i) {
    double v = uni(rng);
    if (!is_floating(t)) {
      // Wide enough that sums wrap.
      const double r = static_cast<double>(static_cast<std::int32_t>(rng()));
      v = t == dtype::uint8   ? static_cast<double>(rng() % 256)
          : t == dtype::int64 ? r * 1048576.0 * 1024.0
                              : r;
    } else if (specials) {
      const int k = pick(rng);
      if (k < static_cast<int>(sizeof special_values / sizeof special_values[0]))
        v = special_values[k];
    }
    kernels::store(t, out.data(), i, v);
  }
  return out;
}

/// Random float32 values with specials (for compression and optimizers).
inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale,
                                        bool specials) {
  const auto bytes = random_elements(dtype::float32, n, seed, specials);
  std::vector<float> v(n);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  if (scale != 1.0f)
    for (auto& x : v)
      x *= scale;
  return v;
}

inline bool element_is_nan(dtype t, const unsigned char* p, std::size_t i) {
  if (!is_floating(t)) return false;
  return std::isnan(kernels::load(t, p, i));
}

/// Elements of a and b (n of dtype t) have the same bits, or are both NaN. Reports the first
/// few differences.
inline ::testing::AssertionResult same_elements(dtype t, const void* a, const void* b,
                                                std::size_t n) {
  const auto* pa = static_cast<const unsigned char*>(a);
  const auto* pb = static_cast<const unsigned char*>(b);
  const std::size_t w = size_of(t);
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::memcmp(pa + i * w, pb + i * w, w) == 0) continue;
    if (element_is_nan(t, pa, i) && element_is_nan(t, pb, i)) continue;
    if (bad < 5)
      first += " [" + std::to_string(i) + "] " + std::to_string(kernels::load(t, pa, i)) + " vs " +
               std::to_string(kernels::load(t, pb, i)) + ";";
    ++bad;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << n << " " << to_string(t) << " elements differ:" << first;
}

/// Float values within `ulps` units in the last place of t (for the 16-bit types the
/// distance is counted in that type's bits), NaNs matching NaNs.
inline ::testing::AssertionResult close_elements(dtype t, const void* a, const void* b,
                                                 std::size_t n, int ulps) {
  const auto* pa = static_cast<const unsigned char*>(a);
  const auto* pb = static_cast<const unsigned char*>(b);
  const std::size_t w = size_of(t);
  auto ordered = [&](const unsigned char* p, std::size_t i) -> std::int64_t {
    std::int64_t v = 0;
    if (w == 2) {
      std::uint16_t u;
      std::memcpy(&u, p + i * 2, 2);
      v = (u & 0x8000u) ? -static_cast<std::int64_t>(u & 0x7fffu) : static_cast<std::int64_t>(u);
    } else if (w == 4) {
      std::uint32_t u;
      std::memcpy(&u, p + i * 4, 4);
      v = (u & 0x80000000u) ? -static_cast<std::int64_t>(u & 0x7fffffffu)
                            : static_cast<std::int64_t>(u);
    } else {
      std::uint64_t u;
      std::memcpy(&u, p + i * 8, 8);
      v = (u >> 63) ? -static_cast<std::int64_t>(u & 0x7fffffffffffffffull)
                    : static_cast<std::int64_t>(u);
    }
    return v;
  };
  std::size_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < n; ++i) {
    const bool na = element_is_nan(t, pa, i), nb = element_is_nan(t, pb, i);
    if (na || nb) {
      if (na && nb) continue;
    } else {
      const std::int64_t d = ordered(pa, i) - ordered(pb, i);
      if (d <= ulps && d >= -ulps) continue;
    }
    if (bad < 5)
      first += " [" + std::to_string(i) + "] " + std::to_string(kernels::load(t, pa, i)) + " vs " +
               std::to_string(kernels::load(t, pb, i)) + ";";
    ++bad;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << n << " " << to_string(t)
                                       << " elements beyond " << ulps << " ulp:" << first;
}

}  // namespace kvactor::gputest
