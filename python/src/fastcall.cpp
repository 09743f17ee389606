#include "fastcall.hpp"

#include <string>

namespace kvactor::python {

void set_python_error() noexcept {
  // pybind11's dispatcher does exactly this (pybind11.h, cpp_function::dispatcher): an
  // error_already_set is restored, anything else goes through the module-local translators,
  // then the global ones (where kvactor::error, py::builtin_exception and the standard
  // exceptions are translated).
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (...) {
    try {
      if (py::detail::apply_exception_translators(
              py::detail::get_local_internals().registered_exception_translators))
        return;
      if (py::detail::apply_exception_translators(
              py::detail::get_internals().registered_exception_translators))
        return;
      PyErr_SetString(PyExc_SystemError, "kvactor: an exception no translator knows");
    } catch (...) {
      PyErr_SetString(PyExc_SystemError, "kvactor: translating an exception failed");
    }
  }
}

bool bind_args(const char* fn, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
               std::initializer_list<const char*> names, std::size_t required, PyObject** out) {
  const std::size_t n = names.size();
  for (std::size_t i = 0; i < n; ++i)
    out[i] = nullptr;
  if (static_cast<std::size_t>(nargs) > n) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %zu arguments (%zd given)", fn, n, nargs);
    return false;
  }
  for (Py_ssize_t i = 0; i < nargs; ++i)
    out[i] = args[i];
  // The common call: positional arguments only, the required ones given.
  if (!kwnames && static_cast<std::size_t>(nargs) >= required) return true;
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, k);
    std::size_t i = 0;
    for (const char* p : names) {
      if (PyUnicode_CompareWithASCIIString(name, p) == 0) break;
      ++i;
    }
    if (i == n) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fn, name);
      return false;
    }
    if (out[i]) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%U'", fn, name);
      return false;
    }
    out[i] = args[nargs + k];
  }
  std::size_t i = 0;
  for (const char* p : names) {
    if (i < required && !out[i]) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, p);
      return false;
    }
    ++i;
  }
  return true;
}

std::optional<double> timeout_arg(PyObject* obj) {
  if (!obj || obj == Py_None) return std::nullopt;
  const double s = PyFloat_AsDouble(obj);
  if (s == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return s;
}

void add_method(py::handle cls, PyMethodDef* def) {
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  py::object descr = py::reinterpret_steal<py::object>(PyDescr_NewMethod(type, def));
  if (!descr) throw py::error_already_set();
  if (PyObject_SetAttrString(cls.ptr(), def->ml_name, descr.ptr()) != 0)
    throw py::error_already_set();
}

}  // namespace kvactor::python
