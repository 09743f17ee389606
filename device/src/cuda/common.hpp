// Private to device/src/cuda (the KVACTOR_ENABLE_CUDA=ON build): CUDA error handling, the
// per-device contexts (streams, events, launch limits) and access to the public handles'
// private parts. Includes cuda_runtime.h; never include it from a public header.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../cuda_backend.hpp"
#include "kvactor/buffer_pool.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/error.hpp"

namespace kvactor::cudart {

/// "what: cudaErrorX (description)".
std::string describe(cudaError_t e, const char* what);
/// The errc a CUDA error maps to: unsupported for a missing device or driver, else internal.
errc code_of(cudaError_t e) noexcept;
/// Throws kvactor::error for e (clearing a non-sticky error first).
[[noreturn]] void fail(cudaError_t e, const char* what);

#define KVACTOR_CUDA(call)                                                               \
  do {                                                                                   \
    const cudaError_t kvactor_cuda_e_ = (call);                                          \
    if (kvactor_cuda_e_ != cudaSuccess) ::kvactor::cudart::fail(kvactor_cuda_e_, #call); \
  } while (0)

/// Makes `index` the calling thread's current device for its lifetime and restores the previous
/// one after (only when it differed).
class device_guard {
 public:
  explicit device_guard(int index);
  ~device_guard();
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;
  /// Switches to another device inside the guard's lifetime.
  void set(int index);

 private:
  int previous_ = -1;
  int current_ = -1;
};

/// Everything kvactor keeps per device. Created on first use, never destroyed.
struct device_context {
  int index = 0;
  int least_priority = 0;     // cudaDeviceGetStreamPriorityRange: normal streams
  int greatest_priority = 0;  // high-priority streams
  int sm_count = 1;
  std::size_t total_memory = 0;
  std::vector<cudaStream_t> streams[2];  // [stream_priority] pool
  cudaStream_t staging[2][2] = {};       // [priority][side]: internal streams of staged copies
  cudaStream_t blocking = nullptr;       // the blocking tensor API's stream

  /// An event (timing disabled) of this device; give it back with release_event once no
  /// later record or wait will use it.
  cudaEvent_t acquire_event();
  void release_event(cudaEvent_t e) noexcept;

  std::mutex event_mu;
  std::vector<cudaEvent_t> free_events;
};

/// The context of device `index`; throws like check_cuda_device.
device_context& context(int index);

inline cudaStream_t native(const device_stream& s) noexcept {
  return static_cast<cudaStream_t>(detail::stream_access::handle(s));
}

/// Throws errc::invalid_argument unless s is a valid stream.
void check_stream(const device_stream& s, const char* what);

/// cudaDeviceCanAccessPeer(a -> b) and back, cached; enables peer access both ways on the
/// first call that finds it possible. False for a == b.
bool peer_copy_possible(int a, int b);

}  // namespace kvactor::cudart
