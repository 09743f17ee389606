// The CUDA pinned host pool's and device pools' allocators (KVACTOR_ENABLE_CUDA=ON build):
// pool_core's size classes and free lists over cudaHostAlloc / cudaMalloc. The pool classes
// themselves are in src/device_pools.cpp.
#include <string>

#include "common.hpp"
#include "kvactor/detail/pool_core.hpp"

namespace kvactor {
namespace {

struct cuda_pinned_core final : detail::pool_core {
  using pool_core::pool_core;

 protected:
  void* system_alloc(std::size_t cap) override {
    if (detail::native_device_count() == 0)
      throw error{errc::unsupported,
                  "pinned host memory needs a CUDA device, and this process has none"};
    void* p = nullptr;
    KVACTOR_CUDA(cudaHostAlloc(&p, cap, cudaHostAllocPortable));
    return p;
  }
  void system_free(void* p, std::size_t) noexcept override { (void)cudaFreeHost(p); }
};

struct cuda_device_core final : detail::pool_core {
  cuda_device_core(int index, std::size_t max_cached) : pool_core(max_cached), index_(index) {}

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

}  // namespace

namespace detail {

std::shared_ptr<pool_core> make_native_pinned_core(std::size_t max_cached) {
  return std::make_shared<cuda_pinned_core>(max_cached);
}

std::shared_ptr<pool_core> make_native_device_core(int index, std::size_t max_cached) {
  auto& ctx = cudart::context(index);  // checks the index
  return std::make_shared<cuda_device_core>(index, max_cached ? max_cached : ctx.total_memory / 2);
}

}  // namespace detail

}  // namespace kvactor
