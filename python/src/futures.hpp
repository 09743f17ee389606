// kvactor.Future: the Python face of a kvactor::future<void>. It holds the objects the call
// lent to the store (its arrays: see lifetimes.hpp) until the call completes, waits with the
// GIL released, and raises the call's error as its kvactor exception.
//   wait(timeout=None) -> bool     result(timeout=None) -> None or raises
//   done() -> bool                 exception(timeout=None) -> the exception or None
//   add_done_callback(fn)          fn(future) on kvactor's notifier thread (GIL held there)
//   as_concurrent()                a concurrent.futures.Future completed with this one
//   __await__                      awaitable in asyncio (through as_concurrent())
// A CPython type of its own rather than a pybind11 class: one is made and waited for per data
// call, and pybind11's instance management and dispatch cost more than a small local
// operation (fastcall.hpp).
// Thread-safety: GIL held for everything here, as Python calls it.
#pragma once

#include <optional>

#include <pybind11/pybind11.h>

#include "kvactor/future.hpp"
#include "lifetimes.hpp"

namespace kvactor::python {

namespace py = pybind11;

/// Waits for f with the GIL released (at most timeout seconds; none: until ready), looking for
/// signals every 100 ms so that Ctrl-C raises KeyboardInterrupt; true when f is ready.
bool wait_interruptible(const kvactor::future<void>& f, std::optional<double> timeout);

/// Registers the class as m.Future.
void bind_futures(py::module_& m);

/// Wraps a call's future and the objects it uses into a kvactor.Future.
py::object make_future(kvactor::future<void> f, keepalive keep);

/// Future.result() of a kvactor.Future made by make_future: waits, raises the call's error.
void future_result(py::handle future, std::optional<double> timeout);

}  // namespace kvactor::python
