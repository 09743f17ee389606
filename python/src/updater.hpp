// A Python callable as the store's updater (MXNet's _set_updater): called as
// updater(key, input, stored) with key an int or a str and input/stored NumPy arrays viewing
// the store's tensors (stored writable: update it in place, e.g. `stored += input`). It runs
// on the store's shard threads holding the GIL: every push then waits for the GIL, so Python
// updaters serialise the store's updates with all Python code (the documented cost; an
// optimizer set with set_optimizer runs in C++ without the GIL). An exception it raises fails
// that push with kvactor.UpdaterFailed naming the exception and where it was raised; the
// store stays usable. The arrays are valid only during the call (keep no reference), and the
// updater must not call the store (it runs inside one of the store's operations).
// Thread-safety: make_updater with the GIL held; the updater itself from any thread.
#pragma once

#include <memory>

#include <pybind11/pybind11.h>

#include "kvactor/updater.hpp"

namespace kvactor::python {

namespace py = pybind11;

/// GIL held: fn is a callable.
std::shared_ptr<const updater> make_python_updater(py::handle fn);

}  // namespace kvactor::python
