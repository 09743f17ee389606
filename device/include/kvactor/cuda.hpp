// CUDA devices, their stream pools and completion callbacks. CUDA-free: the types here are
// opaque handles, so including this header needs no CUDA toolkit.
//
// Builds. With KVACTOR_ENABLE_CUDA=ON (the default where nvcc is found) these functions drive
// the CUDA runtime (linked statically); with it OFF they exist too, report no device, and
// everything that would touch a device throws kvactor::error with errc::unsupported.
//
// Devices. device::cuda(N) names the N-th device the CUDA runtime lists (as CUDA_VISIBLE_DEVICES
// leaves them). An index at or beyond cuda_device_count() is errc::invalid_argument; without
// any device (no GPU, no driver, or a build without CUDA) every cuda device is errc::unsupported.
//
// Streams. Each device has a pool of streams at two priorities, created on first use and kept
// until the process exits (a device_stream is a plain value: copy it freely). Work enqueued on
// one stream runs in order; different streams run concurrently. stream_priority::high maps to
// the device's most urgent stream priority (for high-priority keys), normal to its least.
//
// Completion. enqueue_callback() turns "all the work queued on this stream so far has
// finished" into a call of a std::function on a host thread that kvactor owns, never a
// blocking wait: an actor enqueues its device work, then a callback that sends it a message.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "kvactor/device.hpp"
#include "kvactor/error.hpp"

namespace kvactor {

/// True when kvactor was built with the CUDA device layer (KVACTOR_ENABLE_CUDA=ON).
bool cuda_compiled() noexcept;

/// True when the devices are emulated: KVACTOR_EMULATE_CUDA=N (1..16) was set and no real CUDA
/// device was found (in either build). Emulated devices keep their memory in host memory, run
/// their streams as ordered queues on host threads and their kernels on the CPU, with the
/// same results, ordering and errors as the CUDA layer: for testing device code on machines
/// without a GPU. A real GPU is never hidden by it. Decided on first use.
///
/// KVACTOR_EMULATE_CUDA unset, empty or 0 means no emulation. Any other value that is not a
/// whole number from 1 to 16 ("two", "99") is an error, never ignored: this function, every
/// other function of this header but cuda_compiled(), device tensors and kvactor::create()
/// throw kvactor::error (invalid_argument) naming the variable, its value and the range.
bool cuda_emulated();

/// The number of CUDA devices this process can use (emulated ones included): 0 without the
/// CUDA build, without a driver or without a GPU. Asked once; later calls return the first
/// answer. Throws like cuda_emulated() for an invalid KVACTOR_EMULATE_CUDA.
int cuda_device_count();

/// cuda_device_count() > 0; throws like it.
bool cuda_available();

/// Throws kvactor::error unless d is a usable CUDA device: errc::unsupported when there is no
/// CUDA device at all (or no CUDA build), errc::invalid_argument for an index out of range.
/// The message names the device and says why.
void check_cuda_device(device d);

/// The device's name as CUDA reports it (e.g. "NVIDIA H100 80GB HBM3"); throws like
/// check_cuda_device.
std::string cuda_device_name(device d);

enum class stream_priority : std::uint8_t { normal, high };

namespace detail {
struct stream_access;
}

/// One stream of a device's pool. Default-constructed: no stream (valid() is false).
class device_stream {
 public:
  device_stream() noexcept = default;

  bool valid() const noexcept { return handle_ != nullptr; }
  /// The CUDA device the stream belongs to.
  kvactor::device device() const noexcept { return kvactor::device::cuda(index_); }
  stream_priority priority() const noexcept { return priority_; }
  /// The cudaStream_t, as a pointer (for code that calls CUDA itself).
  void* native_handle() const noexcept { return handle_; }

  friend bool operator==(const device_stream& a, const device_stream& b) noexcept {
    return a.handle_ == b.handle_;
  }
  friend bool operator!=(const device_stream& a, const device_stream& b) noexcept {
    return !(a == b);
  }

 private:
  friend struct detail::stream_access;
  void* handle_ = nullptr;
  int index_ = 0;
  stream_priority priority_ = stream_priority::normal;
};

/// Streams per priority in each device's pool (4; KVACTOR_CUDA_STREAMS overrides, 1..64).
std::size_t streams_per_priority() noexcept;

/// Stream number hint % streams_per_priority() of device d at priority p. Passing the same
/// hint (e.g. a key's hash) gives the same stream, so work for one key stays in order.
/// Throws like check_cuda_device(d); errc::internal when CUDA fails to create the stream.
device_stream get_stream(device d, stream_priority p = stream_priority::normal,
                         std::size_t hint = 0);

/// The CUDA priority value of s (lower numbers are more urgent; see
/// cudaDeviceGetStreamPriorityRange).
int native_priority(const device_stream& s);

/// Calls fn(status) on a kvactor host thread once all the work queued on s before this call
/// has finished: status is ok, or errc::internal naming the CUDA error when the device failed
/// (the callback still runs exactly once then, so nothing waits forever). Callbacks run one at
/// a time, in order for each stream; they must not block for long (they delay the others), and
/// may call any kvactor or CUDA function, enqueue more work included. An exception escaping fn
/// is caught and reported on stderr. Throws kvactor::error when s is not valid or CUDA refuses.
void enqueue_callback(const device_stream& s, std::function<void(const status&)> fn);

/// Work enqueued on `waiter` after this call starts only when the work queued on `on` before
/// this call has finished (an event, no host wait). The streams may belong to different devices.
void stream_wait(const device_stream& waiter, const device_stream& on);

/// Blocks until all work queued on s has finished; throws kvactor::error (errc::internal with
/// the CUDA error) when it failed. For tests, tools and the blocking tensor API: actors use
/// enqueue_callback.
void synchronize(const device_stream& s);

}  // namespace kvactor
