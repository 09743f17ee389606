// pinned_pool and device_pool over the backend's allocators: CUDA's (in a build without CUDA,
// one that refuses), or host memory for emulated devices.
#include <cstdlib>
#include <mutex>
#include <vector>

#include "cuda_backend.hpp"
#include "kvactor/detail/device_memory.hpp"
#include "kvactor/detail/pool_core.hpp"

namespace kvactor {

namespace {

// 0 when the variable is not set (or not a number).
std::size_t env_megabytes(const char* name) {
  if (const char* env = std::getenv(name)) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end != env) return static_cast<std::size_t>(v) << 20;
  }
  return 0;
}

}  // namespace

struct pinned_pool::impl {
  std::shared_ptr<detail::pool_core> core;
};

struct device_pool::impl {
  std::shared_ptr<detail::pool_core> core;
};

pinned_pool& pinned_pool::global() {
  // Never destroyed: buffers held by static objects may be released during exit.
  static pinned_pool* pool = [] {
    std::size_t cap = env_megabytes("KVACTOR_PINNED_CACHE_MB");
    if (!cap && !std::getenv("KVACTOR_PINNED_CACHE_MB")) cap = std::size_t{1} << 30;
    auto i = std::make_shared<impl>();
    i->core = kvactor::detail::emu::active() ? kvactor::detail::emu::make_memory_core(cap, false)
                                             : detail::make_native_pinned_core(cap);
    return new pinned_pool(std::move(i));
  }();
  return *pool;
}

std::shared_ptr<buffer> pinned_pool::acquire(std::size_t bytes) {
  return impl_->core->acquire(bytes);
}
void pinned_pool::trim() {
  impl_->core->trim();
}
buffer_pool::stats pinned_pool::get_stats() const {
  return impl_->core->get_stats();
}

device_pool& device_pool::of(device d) {
  check_cuda_device(d);
  static std::mutex mu;
  static auto* pools = new std::vector<device_pool*>();
  std::lock_guard<std::mutex> g(mu);
  if (pools->empty()) pools->resize(static_cast<std::size_t>(cuda_device_count()), nullptr);
  auto& p = (*pools)[static_cast<std::size_t>(d.index())];
  if (!p) {
    // Default cache: half the device's memory (CUDA), 1 GiB (emulated).
    const std::size_t cap = env_megabytes("KVACTOR_CUDA_POOL_CACHE_MB");
    auto i = std::make_shared<impl>();
    i->core = kvactor::detail::emu::active()
                  ? kvactor::detail::emu::make_memory_core(cap ? cap : std::size_t{1} << 30, true)
                  : detail::make_native_device_core(d.index(), cap);
    p = new device_pool(d, std::move(i));
  }
  return *p;
}

std::shared_ptr<buffer> device_pool::acquire(std::size_t bytes) {
  return impl_->core->acquire(bytes);
}
void device_pool::trim() {
  impl_->core->trim();
}
buffer_pool::stats device_pool::get_stats() const {
  return impl_->core->get_stats();
}

}  // namespace kvactor
