// The CUDA layer's interfaces in a build without CUDA (KVACTOR_ENABLE_CUDA=OFF): no device is
// ever found, and everything that would need one throws kvactor::error with errc::unsupported.
#include <string>

#include "cuda_backend.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/device_kernels.hpp"
#include "kvactor/device_memory.hpp"

namespace kvactor {

namespace {
[[noreturn]] void no_cuda(const std::string& what) {
  throw error{errc::unsupported,
              what +
                  ": kvactor was built without CUDA (configure it with KVACTOR_ENABLE_CUDA=ON "
                  "where the CUDA toolkit is installed)"};
}
}  // namespace

bool cuda_compiled() noexcept {
  return false;
}
int cuda_device_count() noexcept {
  return 0;
}
bool cuda_available() noexcept {
  return false;
}

void check_cuda_device(device d) {
  if (d.is_cpu()) throw error{errc::invalid_argument, d.to_string() + " is not a CUDA device"};
  no_cuda("tensors on " + d.to_string());
}

std::string cuda_device_name(device d) {
  check_cuda_device(d);
  return {};
}

std::size_t streams_per_priority() noexcept {
  return 4;
}

device_stream get_stream(device d, stream_priority, std::size_t) {
  check_cuda_device(d);
  return {};
}
int native_priority(const device_stream&) {
  no_cuda("native_priority");
}
void enqueue_callback(const device_stream&, std::function<void(const status&)>) {
  no_cuda("enqueue_callback");
}
void stream_wait(const device_stream&, const device_stream&) {
  no_cuda("stream_wait");
}
void synchronize(const device_stream&) {
  no_cuda("synchronize");
}

namespace detail {
device_stream blocking_stream(device d) {
  check_cuda_device(d);
  return {};
}
}  // namespace detail

// An impl is never made: the pools refuse before they would allocate.
struct pinned_pool::impl {};
struct device_pool::impl {};

pinned_pool& pinned_pool::global() {
  static pinned_pool* pool = new pinned_pool(nullptr);
  return *pool;
}
std::shared_ptr<buffer> pinned_pool::acquire(std::size_t) {
  no_cuda("pinned host memory");
}
void pinned_pool::trim() {}
buffer_pool::stats pinned_pool::get_stats() const {
  return {};
}

device_pool& device_pool::of(device d) {
  check_cuda_device(d);
  no_cuda("device memory");
}
std::shared_ptr<buffer> device_pool::acquire(std::size_t) {
  no_cuda("device memory");
}
void device_pool::trim() {}
buffer_pool::stats device_pool::get_stats() const {
  return {};
}

namespace device_kernels {

void sum_async(const device_stream&, dtype, void*, const void* const*, std::size_t, std::size_t) {
  no_cuda("sum_async");
}
void accumulate_async(const device_stream&, dtype, void*, const void*, std::size_t) {
  no_cuda("accumulate_async");
}
void fill_async(const device_stream&, dtype, void*, double, std::size_t) {
  no_cuda("fill_async");
}
void cast_async(const device_stream&, dtype, const void*, dtype, void*, std::size_t) {
  no_cuda("cast_async");
}
void copy_async(const device_stream&, void*, device, const void*, device, std::size_t) {
  no_cuda("copy_async");
}
void to_device_async(const device_stream&, void*, const void*, std::size_t) {
  no_cuda("to_device_async");
}
void to_host_async(const device_stream&, void*, const void*, std::size_t) {
  no_cuda("to_host_async");
}
void quantize_async(const device_stream&, const compression::params&, const float*, float*,
                    std::uint32_t*, std::size_t) {
  no_cuda("quantize_async");
}
void dequantize_async(const device_stream&, const compression::params&, const std::uint32_t*,
                      float*, std::size_t) {
  no_cuda("dequantize_async");
}
void dequantize_add_async(const device_stream&, const compression::params&, const std::uint32_t*,
                          float*, std::size_t) {
  no_cuda("dequantize_add_async");
}
void sgd_update_async(const device_stream&, dtype, void*, const void*, void*,
                      const kernels::sgd_params&, std::size_t, float*) {
  no_cuda("sgd_update_async");
}
void adam_update_async(const device_stream&, dtype, void*, const void*, void*, void*,
                       const kernels::adam_params&, std::size_t, float*) {
  no_cuda("adam_update_async");
}

namespace detail {
void force_staged_device_copies(bool) noexcept {}
void set_staging_chunk_bytes(std::size_t) noexcept {}
}  // namespace detail

}  // namespace device_kernels

}  // namespace kvactor
