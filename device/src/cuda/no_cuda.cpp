// The CUDA layer's interfaces in a build without CUDA (KVACTOR_ENABLE_CUDA=OFF): the CUDA
// backend finds no device, so every call goes to emulated devices when they are on
// (KVACTOR_EMULATE_CUDA) and is otherwise refused with errc::unsupported.
#include <string>

#include "../cuda_backend.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/pool_core.hpp"

namespace kvactor {

namespace {

[[noreturn]] void no_cuda(const std::string& what) {
  throw error{errc::unsupported,
              what +
                  ": kvactor was built without CUDA (configure it with KVACTOR_ENABLE_CUDA=ON "
                  "where the CUDA toolkit is installed)"};
}

// The pinned pool exists (pinned_pool::global() never throws); it refuses to allocate.
class refusing_core final : public detail::pool_core {
 public:
  using pool_core::pool_core;

 protected:
  void* system_alloc(std::size_t) override { no_cuda("pinned host memory"); }
  void system_free(void*, std::size_t) noexcept override {}
};

}  // namespace

namespace detail {

int native_device_count() noexcept {
  return 0;
}

std::shared_ptr<pool_core> make_native_pinned_core(std::size_t max_cached) {
  return std::make_shared<refusing_core>(max_cached);
}

std::shared_ptr<pool_core> make_native_device_core(int index, std::size_t) {
  no_cuda("memory on cuda(" + std::to_string(index) + ")");
}

device_stream blocking_stream(device d) {
  if (emu::active()) return emu::blocking_stream(d);
  check_cuda_device(d);
  return {};
}

}  // namespace detail

bool cuda_compiled() noexcept {
  return false;
}

int cuda_device_count() {
  return kvactor::detail::emu::active() ? kvactor::detail::emu::device_count() : 0;
}

bool cuda_emulated() {
  return kvactor::detail::emu::active();
}

bool cuda_available() {
  return cuda_device_count() > 0;
}

void check_cuda_device(device d) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::check_device(d);
  if (d.is_cpu()) throw error{errc::invalid_argument, d.to_string() + " is not a CUDA device"};
  no_cuda("tensors on " + d.to_string());
}

std::string cuda_device_name(device d) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::device_name(d);
  check_cuda_device(d);
  return {};
}

std::size_t streams_per_priority() noexcept {
  return 4;
}

device_stream get_stream(device d, stream_priority p, std::size_t hint) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::get_stream(d, p, hint);
  check_cuda_device(d);
  return {};
}

int native_priority(const device_stream& s) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::native_priority(s);
  no_cuda("native_priority");
}

void enqueue_callback(const device_stream& s, std::function<void(const status&)> fn) {
  if (kvactor::detail::emu::active())
    return kvactor::detail::emu::enqueue_callback(s, std::move(fn));
  no_cuda("enqueue_callback");
}

void stream_wait(const device_stream& waiter, const device_stream& on) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::stream_wait(waiter, on);
  no_cuda("stream_wait");
}

void synchronize(const device_stream& s) {
  if (kvactor::detail::emu::active()) return kvactor::detail::emu::synchronize(s);
  no_cuda("synchronize");
}

namespace device_kernels {

void sum_async(const device_stream& s, dtype t, void* dst, const void* const* srcs, std::size_t k,
               std::size_t n) {
  if (!kvactor::detail::emu::active()) no_cuda("sum_async");
  kvactor::detail::emu::sum_async(s, t, dst, srcs, k, n);
}

void accumulate_async(const device_stream& s, dtype t, void* dst, const void* src, std::size_t n) {
  const void* srcs[2] = {dst, src};
  sum_async(s, t, dst, srcs, 2, n);
}

void fill_async(const device_stream& s, dtype t, void* dst, double value, std::size_t n) {
  if (!kvactor::detail::emu::active()) no_cuda("fill_async");
  kvactor::detail::emu::fill_async(s, t, dst, value, n);
}

void cast_async(const device_stream& s, dtype from, const void* src, dtype to, void* dst,
                std::size_t n) {
  if (!kvactor::detail::emu::active()) no_cuda("cast_async");
  kvactor::detail::emu::cast_async(s, from, src, to, dst, n);
}

void copy_async(const device_stream& s, void* dst, device dst_dev, const void* src, device src_dev,
                std::size_t bytes) {
  if (!kvactor::detail::emu::active()) no_cuda("copy_async");
  kvactor::detail::emu::copy_async(s, dst, dst_dev, src, src_dev, bytes);
}

void to_device_async(const device_stream& s, void* dst, const void* host_src, std::size_t bytes) {
  if (!kvactor::detail::emu::active()) no_cuda("to_device_async");
  kvactor::detail::emu::copy_async(s, dst, s.device(), host_src, device::cpu(), bytes);
}

void to_host_async(const device_stream& s, void* host_dst, const void* src, std::size_t bytes) {
  if (!kvactor::detail::emu::active()) no_cuda("to_host_async");
  kvactor::detail::emu::copy_async(s, host_dst, device::cpu(), src, s.device(), bytes);
}

void quantize_async(const device_stream& s, const compression::params& p, const float* grad,
                    float* residual, std::uint32_t* out, std::size_t n) {
  if (!kvactor::detail::emu::active()) no_cuda("quantize_async");
  kvactor::detail::emu::quantize_async(s, p, grad, residual, out, n);
}

void dequantize_async(const device_stream& s, const compression::params& p, const std::uint32_t* in,
                      float* out, std::size_t n) {
  if (!kvactor::detail::emu::active()) no_cuda("dequantize_async");
  kvactor::detail::emu::dequantize_async(s, p, in, out, n, false);
}

void dequantize_add_async(const device_stream& s, const compression::params& p,
                          const std::uint32_t* in, float* acc, std::size_t n) {
  if (!kvactor::detail::emu::active()) no_cuda("dequantize_add_async");
  kvactor::detail::emu::dequantize_async(s, p, in, acc, n, true);
}

void sgd_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mom,
                      const kernels::sgd_params& p, std::size_t n, float* master) {
  if (!kvactor::detail::emu::active()) no_cuda("sgd_update_async");
  kvactor::detail::emu::sgd_update_async(s, t, weight, grad, mom, p, n, master);
}

void adam_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mean,
                       void* var, const kernels::adam_params& p, std::size_t n, float* master) {
  if (!kvactor::detail::emu::active()) no_cuda("adam_update_async");
  kvactor::detail::emu::adam_update_async(s, t, weight, grad, mean, var, p, n, master);
}

namespace detail {
void force_staged_device_copies(bool) noexcept {}
void set_staging_chunk_bytes(std::size_t) noexcept {}
}  // namespace detail

}  // namespace device_kernels
}  // namespace kvactor
