#include "errors.hpp"

#include <array>
#include <cstddef>
#include <string>

namespace kvactor::python {

namespace {

struct error_class {
  errc code;
  const char* name;
  PyObject* builtin;  // the second base; set in bind_errors (the PyExc_ globals are not constant)
};

// The one table: kvactor::errc -> the Python class name and its builtin base.
std::array<error_class, static_cast<std::size_t>(last_errc)> table() {
  return {{
      {errc::not_initialized, "NotInitialized", PyExc_KeyError},
      {errc::already_initialized, "AlreadyInitialized", PyExc_ValueError},
      {errc::shape_mismatch, "ShapeMismatch", PyExc_ValueError},
      {errc::dtype_mismatch, "DtypeMismatch", PyExc_TypeError},
      {errc::mixed_key_types, "MixedKeyTypes", PyExc_TypeError},
      {errc::invalid_argument, "InvalidArgument", PyExc_ValueError},
      {errc::peer_lost, "PeerLost", PyExc_ConnectionError},
      {errc::timeout, "Timeout", PyExc_TimeoutError},
      {errc::protocol_error, "ProtocolError", PyExc_ConnectionError},
      {errc::unauthenticated, "Unauthenticated", PyExc_PermissionError},
      {errc::unsupported, "Unsupported", PyExc_NotImplementedError},
      {errc::out_of_range, "OutOfRange", PyExc_IndexError},
      {errc::updater_failed, "UpdaterFailed", PyExc_RuntimeError},
      {errc::shut_down, "ShutDown", PyExc_RuntimeError},
      {errc::internal, "InternalError", PyExc_RuntimeError},
      {errc::aborted, "Aborted", PyExc_RuntimeError},
  }};
}

// Borrowed from the module, which keeps them; plain pointers so that nothing is released at
// process exit, after the interpreter is gone. Index: the errc value (0: kvactor.Error).
std::array<PyObject*, static_cast<std::size_t>(last_errc) + 1> classes{};

PyObject* class_of(errc code) {
  const auto i = static_cast<std::size_t>(code);
  return i < classes.size() && classes[i] ? classes[i] : classes[0];
}

}  // namespace

void bind_errors(py::module_& m) {
  const std::string prefix = "kvactor.";
  // str() of an error is its message, also for the KeyError ones (KeyError's own __str__
  // would quote it).
  py::object plain_str = py::reinterpret_borrow<py::object>(PyExc_Exception).attr("__str__");
  py::dict base_dict;
  base_dict["__str__"] = plain_str;
  base_dict["code"] = py::str("error");
  base_dict["__doc__"] =
      py::str("Base class of every kvactor error; `code` names the kvactor::errc.");
  PyObject* base = PyErr_NewException((prefix + "Error").c_str(), PyExc_Exception, base_dict.ptr());
  if (!base) throw py::error_already_set();
  classes[0] = base;
  m.add_object("Error", py::reinterpret_steal<py::object>(base));
  py::dict by_code;
  for (const auto& e : table()) {
    py::dict d;
    d["__str__"] = plain_str;
    d["code"] = py::str(to_string(e.code));
    d["__doc__"] = py::str(std::string{"kvactor errc::"} + to_string(e.code) + ".");
    py::tuple bases = py::make_tuple(py::handle(base), py::handle(e.builtin));
    PyObject* cls = PyErr_NewException((prefix + e.name).c_str(), bases.ptr(), d.ptr());
    if (!cls) throw py::error_already_set();
    classes[static_cast<std::size_t>(e.code)] = cls;
    m.add_object(e.name, py::reinterpret_steal<py::object>(cls));
    by_code[py::str(to_string(e.code))] = py::handle(cls);
  }
  m.attr("_error_classes") = by_code;

  // pybind11's translator type takes the exception_ptr by value.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kvactor::error& e) {
      py::object exc = make_exception(e.to_status());
      PyErr_SetObject(class_of(e.code()), exc.ptr());
    }
  });
}

py::object make_exception(const kvactor::status& s) {
  py::handle cls = class_of(s.code());
  return cls(py::str(s.message()));
}

void raise_status(const kvactor::status& s) {
  py::object exc = make_exception(s);
  PyErr_SetObject(class_of(s.code()), exc.ptr());
  throw py::error_already_set();
}

}  // namespace kvactor::python
