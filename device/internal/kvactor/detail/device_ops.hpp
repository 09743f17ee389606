// Tensor-level device work built on kvactor/cuda.hpp and kvactor/detail/device_kernels.hpp, shared
// by the stores: k-way sums of tensors that live on several devices, and one completion for work
// queued on several streams. CUDA-free header.
// Thread-safety: every function may be called from any thread.
#pragma once

#include <functional>
#include <vector>

#include "kvactor/cuda.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor {

/// Enqueues on s: out = inputs[0] + ... + inputs[k-1] (one fused kernel), where out is on s's
/// device and the inputs are on any device or the host: those elsewhere are copied to s's device
/// first (peer-to-peer or staged, host values uploaded). All must have out's shape and dtype
/// (unchecked). Returns the temporaries the work uses: keep them, with the inputs and out,
/// until s reports back. Throws like the device_kernels calls.
std::vector<tensor> sum_on_device_async(const device_stream& s, const std::vector<tensor>& inputs,
                                        tensor& out);

/// An uninitialised cpu tensor in pinned host memory when a CUDA device is present (copies to and
/// from devices then run at the DMA rate without staging), else in pooled host memory. For
/// the short-lived host copies of device values.
tensor pinned_empty(const shape& s, dtype t);

/// Calls fn exactly once, on the device callback thread, when the work queued so far on every
/// stream of `streams` has finished: with the first error any stream reported, or ok. With no
/// streams, calls it at once on this thread. When asking a stream fails, the streams not yet
/// asked count as finished with that error (nothing waits forever).
void when_all_done(const std::vector<device_stream>& streams,
                   std::function<void(const status&)> fn);

}  // namespace kvactor
