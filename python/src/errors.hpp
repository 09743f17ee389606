// kvactor's errors in Python: one exception class per kvactor::errc, each deriving from
// kvactor.Error and from the builtin exception a Python user expects (NotInitialized is a
// KeyError, ShapeMismatch a ValueError, PeerLost a ConnectionError, ...). The table is in
// errors.cpp. Thread-safety: GIL held for everything here.
#pragma once

#include <pybind11/pybind11.h>

#include "kvactor/error.hpp"

namespace kvactor::python {

namespace py = pybind11;

/// Creates the classes in m and makes pybind11 translate a thrown kvactor::error into them.
void bind_errors(py::module_& m);

/// A new exception object for s (not ok): its class by s.code(), its text the C++ message.
py::object make_exception(const kvactor::status& s);

/// Raises s (not ok) as its Python exception: throws py::error_already_set.
[[noreturn]] void raise_status(const kvactor::status& s);

}  // namespace kvactor::python
