// kvactor.Future: the Python face of a kvactor::future<void>. It holds the objects the call
// lent to the store (its arrays: see lifetimes.hpp) until the call completes, waits with the
// GIL released, and raises the call's error as its kvactor exception.
//   wait(timeout=None) -> bool     result(timeout=None) -> None or raises
//   done() -> bool                 exception(timeout=None) -> the exception or None
//   add_done_callback(fn)          fn(future) on kvactor's notifier thread (GIL held there)
//   as_concurrent()                a concurrent.futures.Future completed with this one
//   __await__                      awaitable in asyncio (through as_concurrent())
// Thread-safety: GIL held for every member, as Python calls them.
#pragma once

#include <optional>

#include <pybind11/pybind11.h>

#include "kvactor/future.hpp"
#include "lifetimes.hpp"

namespace kvactor::python {

namespace py = pybind11;

class py_future {
 public:
  py_future(kvactor::future<void> f, keepalive keep);
  py_future(const py_future&) = delete;
  py_future& operator=(const py_future&) = delete;
  /// Parks what the call still uses when the call is still running.
  ~py_future();

  bool done() const { return f_.ready(); }
  bool wait(std::optional<double> timeout) const;
  void result(std::optional<double> timeout) const;
  py::object exception(std::optional<double> timeout) const;
  const kvactor::future<void>& get() const noexcept { return f_; }

 private:
  kvactor::future<void> f_;
  keepalive keep_;
};

/// Waits for f with the GIL released (at most timeout seconds; none: until ready), looking for
/// signals every 100 ms so that Ctrl-C raises KeyboardInterrupt; true when f is ready.
bool wait_interruptible(const kvactor::future<void>& f, std::optional<double> timeout);

/// Registers the class (and the function that makes a concurrent.futures.Future of it).
void bind_futures(py::module_& m);

/// Wraps a call's future and the objects it uses into a kvactor.Future.
py::object make_future(kvactor::future<void> f, keepalive keep);

}  // namespace kvactor::python
