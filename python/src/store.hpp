// kvactor._Store: MXNet's KVStore over kvactor::kvstore (the Python package's KVStore derives
// from it and adds set_optimizer's MXNet-style arguments). Data calls (push, pull, pushpull,
// broadcast, row_sparse_pull) return a kvactor.Future at once; init and the control calls
// (set_optimizer, set_gradient_compression, the optimizer states, barrier, commands to
// servers, wait_all) wait and raise. The GIL is released around every call into the store.
// Thread-safety: GIL held for every member, as Python calls them; one store may be used from
// several Python threads.
#pragma once

#include <memory>

#include <pybind11/pybind11.h>

#include "kvactor/kvstore.hpp"

namespace kvactor::python {

namespace py = pybind11;

void bind_store(py::module_& m);

/// GIL held, from the atexit hook: closes every open store (waiting for its calls, leaving
/// its cluster), so none is left for the interpreter's teardown.
void close_all_stores();

/// GIL held: the C++ store behind a kvactor._Store (ShutDown once closed); for the benchmark
/// hooks (bench_hooks.hpp).
std::shared_ptr<kvstore> native_store(py::handle store);

}  // namespace kvactor::python
