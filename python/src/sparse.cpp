#include "sparse.hpp"

#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "arrays.hpp"

namespace kvactor::python {

py_row_sparse::py_row_sparse(row_sparse_tensor value)
    : initial_(std::move(value)), out_(initial_.device(), initial_.dtype()) {}

row_sparse_tensor py_row_sparse::current() const {
  row_sparse_tensor pulled;
  {
    py::gil_scoped_release nogil;
    pulled = out_.value();
  }
  return pulled.defined() ? pulled : initial_;
}

namespace {

PyTypeObject* row_sparse_type = nullptr;  // set once by bind_sparse; the module keeps it

kvactor::shape to_shape(const std::vector<std::int64_t>& dims) {
  return kvactor::shape{dims};
}

py::tuple shape_tuple(const kvactor::shape& s) {
  py::tuple t(s.ndim());
  for (std::size_t i = 0; i < s.ndim(); ++i)
    t[i] = py::int_(s[i]);
  return t;
}

dtype parse_dtype_name(const py::handle& name) {
  const std::string text = py::str(name);
  // numpy.float32, numpy.dtype('float32') and 'float32' all print their name through str()
  // of a dtype; a NumPy type object prints "<class 'numpy.float32'>", so go through
  // numpy.dtype for anything that is not a string.
  std::string n = py::isinstance<py::str>(name)
                      ? text
                      : std::string(py::str(py::module_::import("numpy").attr("dtype")(name)));
  if (auto t = kvactor::parse_dtype(n)) return *t;
  throw py::type_error("dtype " + n + " is not one kvactor stores");
}

// Rows and indices copied into memory kvactor owns (indices as int64, whatever integer type
// they came in): a RowSparse is a value, made once.
py_row_sparse make(py::handle data, py::handle indices, const std::vector<std::int64_t>& dims) {
  keepalive keep;
  tensor rows = to_tensor(data, access::read, keep, "RowSparse data");
  tensor idx = to_tensor(indices, access::read, keep, "RowSparse indices");
  py::gil_scoped_release nogil;
  return py_row_sparse{
      row_sparse_tensor::from(idx.astype(dtype::int64), rows.copy(), to_shape(dims))};
}

}  // namespace

bool is_row_sparse(py::handle h) noexcept {
  return row_sparse_type && PyObject_TypeCheck(h.ptr(), row_sparse_type);
}

void bind_sparse(py::module_& m) {
  auto cls =
      py::class_<py_row_sparse>(
          m, "RowSparse",
          "A row-sparse value (MXNet's RowSparseNDArray): the rows present, "
          "their row indices (sorted, unique) and the full shape; every other "
          "row is zero. init and push take it; pull and row_sparse_pull fill "
          "it (read it after the call's wait()).")
          .def(py::init(&make), py::arg("data"), py::arg("indices"), py::arg("shape"),
               "data: the rows (len(indices) x shape[1:]); indices: integers, strictly "
               "increasing, each in [0, shape[0]); both copied.")
          .def_static(
              "from_dense",
              [](py::handle dense) {
                keepalive keep;
                tensor t = to_tensor(dense, access::read, keep, "dense");
                py::gil_scoped_release nogil;
                return py_row_sparse{row_sparse_tensor::from_dense(t)};
              },
              py::arg("dense"),
              "The rows of dense that hold any non-zero element (MXNet's "
              "tostype('row_sparse')).")
          .def_static(
              "zeros",
              [](const std::vector<std::int64_t>& dims, py::handle dt) {
                return py_row_sparse{
                    row_sparse_tensor::zeros(to_shape(dims), parse_dtype_name(dt))};
              },
              py::arg("shape"), py::arg("dtype") = "float32", "No rows present.")
          .def_property_readonly(
              "shape", [](const py_row_sparse& r) { return shape_tuple(r.current().shape()); })
          .def_property_readonly(
              "dtype", [](const py_row_sparse& r) { return numpy_name(r.current().dtype()); })
          .def_property_readonly(
              "data", [](const py_row_sparse& r) { return to_numpy(r.current().data(), false); },
              "The rows present (a read-only NumPy view).")
          .def_property_readonly(
              "indices",
              [](const py_row_sparse& r) { return to_numpy(r.current().host_indices(), false); },
              "Their row indices (int64, sorted, unique; a read-only NumPy view).")
          .def(
              "asnumpy",
              [](const py_row_sparse& r) {
                const row_sparse_tensor cur = r.current();
                tensor dense;
                {
                  py::gil_scoped_release nogil;
                  dense = cur.to_dense().copy_to(device::cpu());
                }
                return to_numpy(dense, true);
              },
              "The dense array it stands for (a new NumPy array).")
          .def("__repr__", [](const py_row_sparse& r) {
            const auto cur = r.current();
            return "<kvactor.RowSparse " + std::to_string(cur.num_rows()) + " rows of " +
                   cur.shape().to_string() + " " + numpy_name(cur.dtype()) + ">";
          });
  row_sparse_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
}

}  // namespace kvactor::python
