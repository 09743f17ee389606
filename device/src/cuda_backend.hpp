// Private to device/src: the seams between the CUDA-free code (tensors, pools, the public
// device API) and the two device backends behind it:
//  - the CUDA layer (src/cuda/, KVACTOR_ENABLE_CUDA=ON), or, in a build without CUDA,
//    src/cuda/no_cuda.cpp, which finds no device and refuses what would need one;
//  - emulated devices (src/emulated/, every build): KVACTOR_EMULATE_CUDA=N, on a machine
//    where the CUDA backend finds no device, gives N "cuda" devices whose memory is host
//    memory and whose streams are ordered task queues on host threads, running the CPU
//    kernels. It exists so that the device stores' logic (streams, events, callbacks, pools,
//    placement, priorities) runs in CI on machines without a GPU; it never hides a real GPU.
// Every public function of cuda.hpp, device_memory.hpp and device_kernels.hpp first asks
// emu::active() and, when it is, hands the call to emu:: (same contract).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "emulated/emulate_setting.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/compression.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/result.hpp"

namespace kvactor::detail {

class pool_core;

/// A stream of device d reserved for the blocking tensor API (at, set, to_vector, copies...),
/// so that it does not queue behind the stores' work. Throws like check_cuda_device(d).
device_stream blocking_stream(device d);

// ---- supplied by the CUDA layer (src/cuda/) or by src/cuda/no_cuda.cpp ----

/// Devices the CUDA runtime lists (0 without CUDA).
int native_device_count() noexcept;
/// The pinned host pool's core (cudaHostAlloc); without CUDA, one that refuses to allocate.
std::shared_ptr<pool_core> make_native_pinned_core(std::size_t max_cached);
/// Device `index`'s memory pool core (cudaMalloc); max_cached 0 means the default.
std::shared_ptr<pool_core> make_native_device_core(int index, std::size_t max_cached);

/// Builds device_stream values (their fields are private).
struct stream_access {
  static device_stream make(void* handle, int index, stream_priority p) noexcept {
    device_stream s;
    s.handle_ = handle;
    s.index_ = index;
    s.priority_ = p;
    return s;
  }
  static void* handle(const device_stream& s) noexcept { return s.handle_; }
};

// ---- emulated devices ----
namespace emu {

/// Throws that invalid_argument when the process's KVACTOR_EMULATE_CUDA is not valid: a
/// mistyped setting must not silently run everything without the devices it asked for.
void check_setting();
/// KVACTOR_EMULATE_CUDA=N (1..16) is set and the CUDA backend finds no device. Decided once;
/// throws like check_setting(), so every device entry point reports a bad setting.
bool active();
/// N; throws like check_setting().
int device_count();
void check_device(device d);
std::string device_name(device d);
device_stream get_stream(device d, stream_priority p, std::size_t hint);
device_stream blocking_stream(device d);
int native_priority(const device_stream& s);
void enqueue_callback(const device_stream& s, std::function<void(const status&)> fn);
void stream_wait(const device_stream& waiter, const device_stream& on);
void synchronize(const device_stream& s);
/// Pinned (host-accessible) memory when device_memory is false. Emulated *device* memory is
/// host memory behind tagged addresses (bit 62 set: not canonical on x86-64 or AArch64), so a
/// host access to it faults at once, as a host access to GPU memory does; the emulated kernels
/// and copies strip the tag.
std::shared_ptr<pool_core> make_memory_core(std::size_t max_cached, bool device_memory);

void sum_async(const device_stream& s, dtype t, void* dst, const void* const* srcs, std::size_t k,
               std::size_t n);
void fill_async(const device_stream& s, dtype t, void* dst, double value, std::size_t n);
void cast_async(const device_stream& s, dtype from, const void* src, dtype to, void* dst,
                std::size_t n);
void copy_async(const device_stream& s, void* dst, device dst_dev, const void* src, device src_dev,
                std::size_t bytes);
void quantize_async(const device_stream& s, const compression::params& p, const float* grad,
                    float* residual, std::uint32_t* out, std::size_t n);
void dequantize_async(const device_stream& s, const compression::params& p, const std::uint32_t* in,
                      float* out, std::size_t n, bool add);
void sgd_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mom,
                      const kernels::sgd_params& p, std::size_t n, float* master);
void adam_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mean,
                       void* var, const kernels::adam_params& p, std::size_t n, float* master);

}  // namespace emu
}  // namespace kvactor::detail
