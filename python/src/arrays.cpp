#include "arrays.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <vector>

#include "dlpack.hpp"

namespace kvactor::python {

namespace {

const char* const supported = "float16, float32, float64, int32, int64 or uint8";

std::string type_name(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__qualname__"));
}

std::optional<dtype> from_numpy_dtype(const py::dtype& d) {
  // NumPy's native byte order is '=' ('|' for single bytes); '<' is native here too, since
  // kvactor only builds for little-endian machines.
  if (d.byteorder() == '>') return std::nullopt;
  const auto size = d.itemsize();
  switch (d.kind()) {
    case 'f':
      if (size == 2) return dtype::float16;
      if (size == 4) return dtype::float32;
      if (size == 8) return dtype::float64;
      break;
    case 'i':
      if (size == 4) return dtype::int32;
      if (size == 8) return dtype::int64;
      break;
    case 'u':
      if (size == 1) return dtype::uint8;
      break;
    default:
      break;
  }
  return std::nullopt;
}

std::optional<dtype> from_dl_dtype(const dl::data_type& t) {
  if (t.lanes != 1) return std::nullopt;
  switch (t.code) {
    case dl::float_code:
      if (t.bits == 16) return dtype::float16;
      if (t.bits == 32) return dtype::float32;
      if (t.bits == 64) return dtype::float64;
      break;
    case dl::bfloat_code:
      if (t.bits == 16) return dtype::bfloat16;
      break;
    case dl::int_code:
      if (t.bits == 32) return dtype::int32;
      if (t.bits == 64) return dtype::int64;
      break;
    case dl::uint_code:
      if (t.bits == 8) return dtype::uint8;
      break;
    default:
      break;
  }
  return std::nullopt;
}

// A 0-d array would be a shape without dimensions, which kvactor reads as no elements.
void check_has_dimensions(std::size_t ndim, const std::string& what) {
  if (ndim == 0)
    throw error{errc::invalid_argument,
                what +
                    ": a 0-d array; kvactor values have at least one dimension "
                    "(reshape it to (1,))"};
}

void check_aligned(const void* p, dtype t, const std::string& what) {
  if (reinterpret_cast<std::uintptr_t>(p) % size_of(t) != 0)
    throw py::type_error(what + ": the data is not aligned to its " + to_string(t) +
                         " elements; pass an aligned copy");
}

// The views of the arrays passed last. A training loop passes the same gradient and weight
// arrays every step, and a C++ caller would hold one tensor for each across its calls; so
// does this, instead of a new storage record (an allocation and its reference counts) per
// call, a third of a small call's cost in Python. An entry serves only the same object with
// the same data pointer, dims and dtype, which is also exactly the view a new one would be:
// a different array at a recycled address with all of those equal views the same memory the
// same way. A view owns nothing (the array goes into `keep` every call), so an entry of an
// array long gone costs its few bytes and nothing else. GIL held, like everything here.
class recent_views {
 public:
  const tensor* find(PyObject* obj, const void* data, const kvactor::shape& s, dtype t) const {
    for (const auto& e : entries_)
      if (e.obj == obj && e.view.data_unchecked() == data && e.view.dtype() == t &&
          e.view.shape() == s)
        return &e.view;
    return nullptr;
  }
  void add(PyObject* obj, const tensor& view) {
    entries_[next_] = entry{obj, view};
    next_ = (next_ + 1) % entries_.size();
  }

 private:
  struct entry {
    PyObject* obj = nullptr;  // identity only: no reference
    tensor view;
  };
  std::array<entry, 8> entries_{};
  std::size_t next_ = 0;
};

recent_views& views() {
  static auto* v = new recent_views();  // never destroyed: tensors must not outlive the library
  return *v;
}

tensor from_numpy(const py::array& a, access mode, keepalive& keep, const std::string& what) {
  const auto t = from_numpy_dtype(a.dtype());
  if (!t)
    throw py::type_error(what + ": dtype " + std::string(py::str(a.dtype())) +
                         " is not one kvactor stores (" + supported + ", native byte order)");
  if (!(a.flags() & py::array::c_style))
    throw py::type_error(what + ": the array is not C-contiguous (strides " +
                         std::string(py::str(a.attr("strides"))) +
                         "); kvactor reads and writes arrays in place, so pass "
                         "numpy.ascontiguousarray(x) and use that array");
  check_has_dimensions(static_cast<std::size_t>(a.ndim()), what);
  if (mode == access::write && !a.writeable())
    throw py::type_error(what + ": the array is read-only, and the store writes into it");
  const void* data = a.data();
  check_aligned(data, *t, what);
  static_assert(std::is_same_v<py::ssize_t, std::int64_t>, "NumPy's dims are read as int64");
  const kvactor::shape s(a.shape(), static_cast<std::size_t>(a.ndim()));
  keep.push_back(py::reinterpret_borrow<py::object>(a));
  if (const tensor* seen = views().find(a.ptr(), data, s, *t)) return *seen;
  tensor view = tensor::view_bytes(const_cast<void*>(data), s, *t);
  views().add(a.ptr(), view);
  return view;
}

device dl_device(const dl::device& d, const std::string& what) {
  switch (d.type) {
    case dl::cpu:
    case dl::cuda_host:
      return device::cpu();
    case dl::cuda:
      return device::cuda(d.id);
    default:
      throw py::type_error(what + ": DLPack device type " + std::to_string(d.type) +
                           " is neither host memory nor a CUDA device");
  }
}

tensor from_capsule(const py::capsule& cap, access mode, keepalive& keep, const std::string& what) {
  (void)mode;  // DLPack 0.x has no read-only flag: producers hand out writable memory
  auto* m = static_cast<dl::managed_tensor*>(PyCapsule_GetPointer(cap.ptr(), dl::capsule_name));
  if (!m) throw py::error_already_set();
  const dl::tensor& x = m->dl_tensor;
  const auto t = from_dl_dtype(x.dtype);
  if (!t)
    throw py::type_error(what + ": DLPack dtype (code " + std::to_string(x.dtype.code) + ", " +
                         std::to_string(x.dtype.bits) + " bits, " + std::to_string(x.dtype.lanes) +
                         " lanes) is not one kvactor stores (" + supported + ", bfloat16)");
  check_has_dimensions(static_cast<std::size_t>(x.ndim), what);
  const kvactor::shape s(x.shape, static_cast<std::size_t>(x.ndim));
  if (x.strides) {
    std::int64_t expected = 1;
    for (std::int32_t i = x.ndim - 1; i >= 0; --i) {
      if (s[i] != 1 && x.strides[i] != expected)
        throw py::type_error(what + ": the tensor is not contiguous (stride " +
                             std::to_string(x.strides[i]) + " in dimension " + std::to_string(i) +
                             "); kvactor reads and writes tensors in place, so pass "
                             "x.contiguous() and use that tensor");
      expected *= s[i];
    }
  }
  void* data = static_cast<char*>(x.data) + x.byte_offset;
  check_aligned(data, *t, what);
  const device d = dl_device(x.device, what);
  tensor view;
  try {
    view = tensor::view_bytes(data, s, *t, d);
  } catch (const error& e) {
    if (d.is_cpu()) throw;
    throw error{e.code(),
                what + ": a tensor on " + d.to_string() +
                    " needs kvactor built with CUDA and that device present: " + e.message()};
  }
  keep.push_back(py::reinterpret_borrow<py::object>(cap));
  return view;
}

}  // namespace

bool is_array_like(py::handle obj) {
  return py::isinstance<py::array>(obj) || PyObject_HasAttrString(obj.ptr(), "__dlpack__") ||
         PyCapsule_IsValid(obj.ptr(), dl::capsule_name);
}

tensor to_tensor(py::handle obj, access mode, keepalive& keep, const std::string& what) {
  if (py::isinstance<py::array>(obj))
    return from_numpy(py::reinterpret_borrow<py::array>(obj), mode, keep, what);
  if (PyCapsule_IsValid(obj.ptr(), dl::capsule_name))
    return from_capsule(py::reinterpret_borrow<py::capsule>(obj), mode, keep, what);
  if (PyObject_HasAttrString(obj.ptr(), "__dlpack__")) {
    py::object cap = obj.attr("__dlpack__")();
    if (!PyCapsule_IsValid(cap.ptr(), dl::capsule_name))
      throw py::type_error(what + ": " + type_name(obj) +
                           ".__dlpack__() did not return a \"dltensor\" capsule");
    keep.push_back(py::reinterpret_borrow<py::object>(obj));
    return from_capsule(py::reinterpret_borrow<py::capsule>(cap), mode, keep, what);
  }
  throw py::type_error(what +
                       ": expected a NumPy array or a DLPack tensor (e.g. a PyTorch "
                       "tensor), got " +
                       type_name(obj) + "; kvactor does not copy lists or scalars into arrays");
}

const char* numpy_name(dtype t) noexcept {
  return to_string(t);
}

py::array to_numpy(const tensor& t, bool writable) {
  if (!t.device().is_cpu())
    throw py::type_error("a " + t.describe() + " has no NumPy view (it is not in host memory)");
  if (t.dtype() == dtype::bfloat16)
    throw py::type_error("a " + t.describe() + " has no NumPy view (NumPy has no bfloat16)");
  std::vector<py::ssize_t> dims(t.shape().dims().begin(), t.shape().dims().end());
  // The array owns a handle to the tensor's storage, so its memory stays valid as long as the
  // array lives, whatever the store does with its own handles.
  auto* owner = new tensor(t);
  py::capsule base(owner, [](void* p) { delete static_cast<tensor*>(p); });
  py::array a(py::dtype(numpy_name(t.dtype())), std::move(dims), t.data_unchecked(), base);
  if (!writable)
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

}  // namespace kvactor::python
