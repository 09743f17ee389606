// Hidden hooks for bench/python_overhead.py: the store calls the benchmark makes from Python,
// looped in C++ with the GIL released, so that one process times both on the same store and
// the same arrays. Not part of the API (names start with an underscore).
// Thread-safety: GIL held on entry, as Python calls them.
#pragma once

#include <pybind11/pybind11.h>

namespace kvactor::python {

namespace py = pybind11;

void bind_bench_hooks(py::module_& m);

}  // namespace kvactor::python
