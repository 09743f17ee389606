// device_kernels.hpp's kernels (KVACTOR_ENABLE_CUDA=ON build): argument checks, then the
// launchers of the .cu files on the stream's device.
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "common.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "launch.hpp"

namespace kvactor::device_kernels {

namespace {

[[noreturn]] void invalid(const char* what, const std::string& why) {
  throw error{errc::invalid_argument, std::string{what} + ": " + why};
}

void need(const char* what, const void* p, const char* name) {
  if (!p) invalid(what, std::string{"null "} + name);
}

// Makes the stream's device current for the launch and returns the launch parameters.
struct launcher {
  launcher(const device_stream& s, const char* what)
      : ctx((cudart::check_stream(s, what), cudart::context(s.device().index()))),
        guard(ctx.index),
        l{cudart::native(s), ctx.index, ctx.sm_count},
        name(what) {}
  void check(cudaError_t e) const {
    if (e != cudaSuccess) cudart::fail(e, name);
  }
  cudart::device_context& ctx;
  cudart::device_guard guard;
  cudak::launch l;
  const char* name;
};

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

bool is_16bit(dtype t) {
  return t == dtype::float16 || t == dtype::bfloat16;
}

}  // namespace

}  // namespace kvactor::device_kernels

namespace kvactor::cudak {

int blocks_per_sm(const void* kernel, int device) {
  static std::mutex mu;
  static auto* cache = new std::map<std::pair<const void*, int>, int>();
  std::lock_guard<std::mutex> g(mu);
  auto [it, fresh] = cache->try_emplace({kernel, device}, 0);
  if (fresh) {
    int b = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, block_threads, 0) !=
            cudaSuccess ||
        b < 1) {
      (void)cudaGetLastError();
      b = 4;  // the launch itself will report what is wrong
    }
    it->second = b;
  }
  return it->second;
}

}  // namespace kvactor::cudak

namespace kvactor::device_kernels {

void sum_async(const device_stream& s, dtype t, void* dst, const void* const* srcs, std::size_t k,
               std::size_t n) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::sum_async(s, t, dst, srcs, k, n);
  const char* what = "sum_async";
  cudart::check_stream(s, what);
  if (k == 0 || k > max_sum_inputs)
    invalid(what, "k = " + std::to_string(k) + " sources (1.." + std::to_string(max_sum_inputs) +
                      " allowed)");
  if (n == 0) return;
  need(what, dst, "destination");
  need(what, srcs, "source list");
  bool vector = aligned16(dst);
  for (std::size_t j = 0; j < k; ++j) {
    need(what, srcs[j], "source");
    vector = vector && aligned16(srcs[j]);
  }
  launcher go(s, what);
  if (is_floating(t))
    go.check(cudak::sum_floating(go.l, t, dst, srcs, k, n, vector));
  else
    go.check(cudak::sum_integer(go.l, t, dst, srcs, k, n, vector));
}

void accumulate_async(const device_stream& s, dtype t, void* dst, const void* src, std::size_t n) {
  const void* srcs[2] = {dst, src};
  sum_async(s, t, dst, srcs, 2, n);
}

void fill_async(const device_stream& s, dtype t, void* dst, double value, std::size_t n) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::fill_async(s, t, dst, value, n);
  const char* what = "fill_async";
  cudart::check_stream(s, what);
  if (n == 0) return;
  need(what, dst, "destination");
  // The element's bits as the CPU converts the value.
  unsigned char elem[8] = {};
  kernels::store(t, elem, 0, value);
  std::uint64_t bits = 0;
  std::memcpy(&bits, elem, size_of(t));
  launcher go(s, what);
  // An element of one repeated byte (zeros, uint8) is a memset.
  bool one_byte = true;
  for (std::size_t i = 1; i < size_of(t); ++i)
    one_byte = one_byte && elem[i] == elem[0];
  if (one_byte)
    go.check(cudaMemsetAsync(dst, elem[0], n * size_of(t), go.l.stream));
  else
    go.check(cudak::fill(go.l, dst, bits, size_of(t), n));
}

void cast_async(const device_stream& s, dtype from, const void* src, dtype to, void* dst,
                std::size_t n) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::cast_async(s, from, src, to, dst, n);
  const char* what = "cast_async";
  cudart::check_stream(s, what);
  if (n == 0) return;
  need(what, src, "source");
  need(what, dst, "destination");
  if (from == to) {
    copy_async(s, dst, s.device(), src, s.device(), n * size_of(from));
    return;
  }
  launcher go(s, what);
  go.check(cudak::cast(go.l, from, src, to, dst, n));
}

void quantize_async(const device_stream& s, const compression::params& p, const float* grad,
                    float* residual, std::uint32_t* out, std::size_t n) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::quantize_async(s, p, grad, residual, out, n);
  const char* what = "quantize_async";
  cudart::check_stream(s, what);
  if (n == 0) return;
  need(what, grad, "gradient");
  need(what, out, "output");
  switch (p.type) {
    case compression::kind::none:
      copy_async(s, out, s.device(), grad, s.device(), n * sizeof(float));
      return;
    case compression::kind::two_bit: {
      need(what, residual, "residual");
      launcher go(s, what);
      go.check(cudak::quantize_2bit(go.l, grad, residual, out, n, p.threshold));
      return;
    }
    case compression::kind::one_bit: {
      need(what, residual, "residual");
      launcher go(s, what);
      go.check(cudak::quantize_1bit(go.l, grad, residual, out, n, p.threshold));
      return;
    }
  }
  invalid(what, "unknown compression kind");
}

namespace {
void dequantize_impl(const char* what, const device_stream& s, const compression::params& p,
                     const std::uint32_t* in, float* out, std::size_t n, bool add) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::dequantize_async(s, p, in, out, n, add);
  cudart::check_stream(s, what);
  if (n == 0) return;
  need(what, in, "input");
  need(what, out, "output");
  switch (p.type) {
    case compression::kind::none:
      if (add)
        accumulate_async(s, dtype::float32, out, in, n);
      else
        copy_async(s, out, s.device(), in, s.device(), n * sizeof(float));
      return;
    case compression::kind::two_bit: {
      launcher go(s, what);
      go.check(cudak::dequantize_2bit(go.l, in, out, n, p.threshold, add));
      return;
    }
    case compression::kind::one_bit: {
      launcher go(s, what);
      go.check(cudak::dequantize_1bit(go.l, in, out, n, add));
      return;
    }
  }
  invalid(what, "unknown compression kind");
}
}  // namespace

void dequantize_async(const device_stream& s, const compression::params& p, const std::uint32_t* in,
                      float* out, std::size_t n) {
  dequantize_impl("dequantize_async", s, p, in, out, n, false);
}

void dequantize_add_async(const device_stream& s, const compression::params& p,
                          const std::uint32_t* in, float* acc, std::size_t n) {
  dequantize_impl("dequantize_add_async", s, p, in, acc, n, true);
}

namespace {
void check_update(const char* what, dtype t, const void* weight, const void* grad,
                  const float* master) {
  need(what, weight, "weight");
  need(what, grad, "gradient");
  if (master && !is_16bit(t))
    invalid(what, std::string{"a float32 master copy is for float16/bfloat16 weights, not "} +
                      to_string(t));
}
}  // namespace

void sgd_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mom,
                      const kernels::sgd_params& p, std::size_t n, float* master) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::sgd_update_async(s, t, weight, grad, mom, p, n, master);
  const char* what = "sgd_update_async";
  cudart::check_stream(s, what);
  if (n == 0 || !is_floating(t)) return;
  check_update(what, t, weight, grad, master);
  launcher go(s, what);
  go.check(cudak::sgd_update(go.l, t, weight, grad, mom, p, n, master));
}

void adam_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mean,
                       void* var, const kernels::adam_params& p, std::size_t n, float* master) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::adam_update_async(s, t, weight, grad, mean, var, p, n, master);
  const char* what = "adam_update_async";
  cudart::check_stream(s, what);
  if (n == 0 || !is_floating(t)) return;
  check_update(what, t, weight, grad, master);
  need(what, mean, "mean");
  need(what, var, "var");
  launcher go(s, what);
  go.check(cudak::adam_update(go.l, t, weight, grad, mean, var, p, n, master));
}

}  // namespace kvactor::device_kernels
