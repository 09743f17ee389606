// The pinned host pool and the device pools (KVACTOR_ENABLE_CUDA=ON build): buffer_pool's size
// classes and free lists over cudaHostAlloc / cudaMalloc.
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "../pool_core.hpp"
#include "common.hpp"
#include "kvactor/device_memory.hpp"

namespace kvactor {

namespace {

std::size_t env_megabytes(const char* name, std::size_t fallback) {
  if (const char* env = std::getenv(name)) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end != env) return static_cast<std::size_t>(v) << 20;
  }
  return fallback;
}

}  // namespace

struct pinned_pool::impl final : detail::pool_core {
  using pool_core::pool_core;

 protected:
  void* system_alloc(std::size_t cap) override {
    if (!cuda_available())
      throw error{errc::unsupported,
                  "pinned host memory needs a CUDA device, and this process has none"};
    void* p = nullptr;
    KVACTOR_CUDA(cudaHostAlloc(&p, cap, cudaHostAllocPortable));
    return p;
  }
  void system_free(void* p, std::size_t) noexcept override { (void)cudaFreeHost(p); }
};

struct device_pool::impl final : detail::pool_core {
  impl(int index, std::size_t max_cached) : pool_core(max_cached), index_(index) {}

 protected:
  void* system_alloc(std::size_t cap) override {
    cudart::device_guard g(index_);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, cap);
    if (e != cudaSuccess)
      cudart::fail(e, ("cudaMalloc of " + std::to_string(cap) + " bytes on cuda(" +
                       std::to_string(index_) + ")")
                          .c_str());
    return p;
  }
  void system_free(void* p, std::size_t) noexcept override {
    int prev = -1;
    if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
    if (prev != index_) (void)cudaSetDevice(index_);
    (void)cudaFree(p);
    if (prev != index_ && prev >= 0) (void)cudaSetDevice(prev);
  }

 private:
  int index_;
};

pinned_pool& pinned_pool::global() {
  static pinned_pool* pool = new pinned_pool(
      std::make_shared<impl>(env_megabytes("KVACTOR_PINNED_CACHE_MB", std::size_t{1} << 30)));
  return *pool;
}

std::shared_ptr<buffer> pinned_pool::acquire(std::size_t bytes) {
  return impl_->acquire(bytes);
}
void pinned_pool::trim() {
  impl_->trim();
}
buffer_pool::stats pinned_pool::get_stats() const {
  return impl_->get_stats();
}

device_pool& device_pool::of(device d) {
  auto& ctx = cudart::context(d.index());  // checks d
  static std::mutex mu;
  static auto* pools = new std::vector<device_pool*>();
  std::lock_guard<std::mutex> g(mu);
  if (pools->empty()) pools->resize(static_cast<std::size_t>(cuda_device_count()), nullptr);
  auto& p = (*pools)[static_cast<std::size_t>(d.index())];
  if (!p) {
    const std::size_t cap = env_megabytes("KVACTOR_CUDA_POOL_CACHE_MB", ctx.total_memory / 2);
    p = new device_pool(d, std::make_shared<impl>(d.index(), cap));
  }
  return *p;
}

std::shared_ptr<buffer> device_pool::acquire(std::size_t bytes) {
  return impl_->acquire(bytes);
}
void device_pool::trim() {
  impl_->trim();
}
buffer_pool::stats device_pool::get_stats() const {
  return impl_->get_stats();
}

}  // namespace kvactor
