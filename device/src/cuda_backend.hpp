// Private to device/src: what the CUDA-free tensor code needs from the CUDA layer beyond the
// public headers. Defined in src/cuda/ (CUDA build) or src/cuda_stub.cpp (without CUDA).
#pragma once

#include "kvactor/cuda.hpp"

namespace kvactor::detail {

/// A stream of device d reserved for the blocking tensor API (at, set, to_vector, copies...),
/// so that it does not queue behind the stores' work. Throws like check_cuda_device(d).
device_stream blocking_stream(device d);

}  // namespace kvactor::detail
