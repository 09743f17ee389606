// Asynchronous device kernels and copies for the device stores: each call enqueues its work on
// a stream (kvactor/cuda.hpp) and returns at once; the work runs after what was queued on that
// stream before, and enqueue_callback() reports when it is done. CUDA-free header.
//
// Pointers are raw device pointers of the stream's device (tensor::data_unchecked() of a
// cuda tensor, device_pool buffers) unless a function says otherwise; n counts elements. The
// memory must stay valid until the work completes (see device_memory.hpp's lifetime rule).
// Ordering across streams is the caller's: when a buffer was written by work on another
// stream, make this stream wait for it first (stream_wait).
//
// Results are those of the CPU kernels (kvactor/detail/kernels.hpp, kvactor/detail/compression.hpp)
// on the same inputs: k-way sums, casts and compression give the same bits, except that a NaN
// result may carry another sign and payload (GPUs produce a canonical NaN); the optimizer updates
// do the same float operations in the same order (no fused multiply-adds), so they agree to within
// the last bit or so.
//
// Errors: invalid arguments (null pointers with n > 0, k out of range, a stream of another
// device) throw kvactor::error with errc::invalid_argument, and nothing is enqueued; a CUDA
// failure to enqueue throws errc::internal with the CUDA error; failures while the work runs
// reach the stream's completion callbacks. Without the CUDA build every function throws
// errc::unsupported. n == 0 enqueues nothing.
// Thread-safety: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kvactor/cuda.hpp"
#include "kvactor/detail/compression.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/device.hpp"
#include "kvactor/dtype.hpp"

namespace kvactor::device_kernels {

/// The largest k sum_async takes in one call.
constexpr std::size_t max_sum_inputs = 256;

/// dst[i] = srcs[0][i] + ... + srcs[k-1][i] for i < n, summed in that order (16-bit floats in
/// float32, rounded once; integers wrap). 1 <= k <= max_sum_inputs. dst may be one of the
/// sources; otherwise it must not overlap them. `srcs` itself is host memory, read before the
/// call returns.
void sum_async(const device_stream& s, dtype t, void* dst, const void* const* srcs, std::size_t k,
               std::size_t n);

/// dst[i] = dst[i] + src[i] (sum_async with srcs = {dst, src}).
void accumulate_async(const device_stream& s, dtype t, void* dst, const void* src, std::size_t n);

/// dst[i] = value converted to t (as kernels::fill converts it).
void fill_async(const device_stream& s, dtype t, void* dst, double value, std::size_t n);

/// dst[i] = src[i] converted from `from` to `to` (kernels::cast's rules). from == to copies.
void cast_async(const device_stream& s, dtype from, const void* src, dtype to, void* dst,
                std::size_t n);

/// Copies `bytes` bytes from src (on src_dev) to dst (on dst_dev), in every direction:
///  - cpu -> cuda, cuda -> cpu: s must belong to the cuda side. Pinned host memory
///    (pinned_pool, or registered) is copied directly; pageable host memory is staged through
///    the pinned pool in chunks (to_device_async / to_host_async), so the call never blocks.
///  - cuda(i) -> cuda(i): a device-to-device copy on s.
///  - cuda(i) -> cuda(j): s must belong to i or j. A peer-to-peer copy where
///    cudaDeviceCanAccessPeer allows it (peer access is enabled on first use), else staged
///    through pinned host memory on internal streams of both devices, ordered after s's
///    earlier work and before its later work.
/// cpu -> cpu is not a device copy: errc::invalid_argument. The regions must not overlap.
void copy_async(const device_stream& s, void* dst, device dst_dev, const void* src, device src_dev,
                std::size_t bytes);

/// Host memory (pageable or pinned) -> device memory of s's device.
void to_device_async(const device_stream& s, void* dst, const void* host_src, std::size_t bytes);
/// Device memory of s's device -> host memory (pageable or pinned). The host bytes are
/// written when s's later callbacks run.
void to_host_async(const device_stream& s, void* host_dst, const void* src, std::size_t bytes);

// ---- gradient compression (float32; the layout and rules of kvactor/detail/compression.hpp) ----

/// residual += grad; codes into out[0, words(kind, n)) (padding bits 0); residual -= decoded.
void quantize_async(const device_stream& s, const compression::params& p, const float* grad,
                    float* residual, std::uint32_t* out, std::size_t n);
/// out[i] = decoded element i.
void dequantize_async(const device_stream& s, const compression::params& p, const std::uint32_t* in,
                      float* out, std::size_t n);
/// acc[i] = acc[i] + decoded element i.
void dequantize_add_async(const device_stream& s, const compression::params& p,
                          const std::uint32_t* in, float* acc, std::size_t n);

// ---- optimizer updates (kernels::sgd_update / adam_update on the device) ----
//
// weight and grad have dtype t (float32, float64, float16, bfloat16; integer dtypes are left
// alone, as on the CPU); the state slots have kernels::slot_dtype(t). With `master` (float32,
// n elements; only for float16/bfloat16 weights) the update is MXNet's multi-precision one:
// the gradient is widened to float32, the float32 update runs on master (and float32 slots),
// and weight becomes master rounded to t, in one pass: the same values as casting the
// gradient up, updating master with the float32 kernel and casting master down.

/// mom == nullptr: SGD without momentum.
void sgd_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mom,
                      const kernels::sgd_params& p, std::size_t n, float* master = nullptr);

void adam_update_async(const device_stream& s, dtype t, void* weight, const void* grad, void* mean,
                       void* var, const kernels::adam_params& p, std::size_t n,
                       float* master = nullptr);

namespace detail {
/// For tests: copies between two cuda devices take the staged path even where peer access (or
/// the same device) would allow a direct copy, so that one GPU exercises it. A relaxed atomic.
void force_staged_device_copies(bool on) noexcept;
/// Chunk size of staged copies (8 MiB by default); for tests, so that small copies span
/// several chunks. 0 restores the default.
void set_staging_chunk_bytes(std::size_t bytes) noexcept;
}  // namespace detail

}  // namespace kvactor::device_kernels
