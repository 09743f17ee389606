// Python arrays as kvactor tensors, without copies, and kvactor tensors as NumPy arrays.
//
// Accepted: a NumPy array (C-contiguous, aligned, native byte order; float16/32/64,
// int32/64, uint8) and any object with __dlpack__ (PyTorch tensors, CuPy, JAX, NumPy via
// DLPack) or a "dltensor" capsule: contiguous, of those dtypes or bfloat16, in host memory
// (CPU or pinned) or on a CUDA device when kvactor has one. The tensor is a view of the
// object's own memory; the object (and its DLPack capsule) goes into `keep`, which the caller
// holds until the store's call has completed. Anything else is refused (TypeError naming what
// is wrong: the dtype, the strides, read-only, the device) rather than copied, because a
// copy would silently break pull/pushpull into the caller's array.
// Thread-safety: GIL held.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "kvactor/tensor.hpp"
#include "lifetimes.hpp"

namespace kvactor::python {

namespace py = pybind11;

enum class access { read, write };

/// The tensor viewing obj's memory; `what` names obj in error messages ("out[1]").
kvactor::tensor to_tensor(py::handle obj, access mode, keepalive& keep, const std::string& what);

/// True when obj is something to_tensor takes (a NumPy array, a DLPack producer or capsule).
bool is_array_like(py::handle obj);

/// A NumPy array viewing t's memory (host tensors only), kept valid by a handle to t's
/// storage that the array owns; read-only unless `writable`. TypeError for bfloat16, which
/// NumPy has no type for.
py::array to_numpy(const kvactor::tensor& t, bool writable);

/// The NumPy name of t ("float32", ...).
const char* numpy_name(kvactor::dtype t) noexcept;

}  // namespace kvactor::python
