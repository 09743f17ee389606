// Pooled CUDA memory: page-locked ("pinned") host buffers and device buffers. cudaHostAlloc and
// cudaMalloc cost milliseconds and synchronise the device, so nothing on a hot path calls
// them: buffers come from these pools (the size classes of buffer_pool) and return on release.
// CUDA-free header.
//
// Lifetime rule for device work: a buffer goes back to its pool when its last reference
// drops, and may then be handed out again at once. Work enqueued on a stream that reads or
// writes a buffer must therefore keep a reference (the tensor, or the shared_ptr) until that
// work's completion callback (kvactor/cuda.hpp) has run.
//
// Without the CUDA build, or without a device, acquire() throws kvactor::error with
// errc::unsupported.
// Thread-safety: every member function may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>

#include "kvactor/buffer_pool.hpp"
#include "kvactor/device.hpp"

namespace kvactor {

/// Page-locked host memory (cudaHostAlloc, portable to every device). A pinned buffer is
/// ordinary host memory to the CPU (tensor::from_buffer makes a cpu tensor of it), and copies
/// between it and a device run at the full DMA rate without staging.
class pinned_pool {
 public:
  /// The process-wide pool: 1 GiB of free buffers cached by default, KVACTOR_PINNED_CACHE_MB
  /// overrides. Never destroyed.
  static pinned_pool& global();

  /// A pinned buffer of at least `bytes` bytes, 64-byte aligned; contents unspecified.
  /// Throws kvactor::error (errc::unsupported without CUDA, errc::internal when CUDA fails).
  std::shared_ptr<buffer> acquire(std::size_t bytes);
  /// Frees every cached buffer.
  void trim();
  buffer_pool::stats get_stats() const;

  struct impl;

 private:
  explicit pinned_pool(std::shared_ptr<impl> i) noexcept : impl_(std::move(i)) {}
  std::shared_ptr<impl> impl_;
};

/// Device memory of one CUDA device (cudaMalloc, 256-byte aligned). buffer::data() is a device
/// pointer: never dereference it on the host.
class device_pool {
 public:
  /// The pool of device d (created on first use, never destroyed). Free buffers are cached up
  /// to half the device's memory by default (KVACTOR_CUDA_POOL_CACHE_MB overrides); when
  /// cudaMalloc runs out of memory the pool frees its cache and tries once more.
  /// Throws like check_cuda_device(d).
  static device_pool& of(device d);

  /// A device buffer of at least `bytes` bytes; contents unspecified. Throws kvactor::error
  /// (errc::internal naming the CUDA error, e.g. out of memory).
  std::shared_ptr<buffer> acquire(std::size_t bytes);
  void trim();
  buffer_pool::stats get_stats() const;
  kvactor::device where() const noexcept { return device_; }

  struct impl;

 private:
  device_pool(kvactor::device d, std::shared_ptr<impl> i) noexcept
      : device_(d), impl_(std::move(i)) {}
  kvactor::device device_;
  std::shared_ptr<impl> impl_;
};

}  // namespace kvactor
