// Python object lifetimes across the store's threads. The store completes futures, runs
// updaters and drops its handles on its own threads, which never hold the GIL; a Python
// reference must still only be dropped with the GIL held. So:
//   - py_ref: an owned reference that is released only by release() under the GIL; one
//     destroyed without that (on a store thread, or after the interpreter stopped) leaks on
//     purpose rather than touching Python without the GIL;
//   - park(): the objects a call lends to the store (its arrays, DLPack capsules) when their
//     Python Future is dropped before the call completed; drain() releases those whose call
//     is done, and every entry into the module calls it;
//   - notifier: the one thread that runs Python code for completions (done callbacks,
//     concurrent.futures and asyncio wake-ups), so store threads never wait for the GIL;
//   - interpreter_alive(): false from the module's atexit hook on: then nothing of kvactor
//     calls into Python any more (an updater called later fails its push instead).
// Thread-safety: each function says which threads may call it.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <pybind11/pybind11.h>
#include <boost/container/small_vector.hpp>

#include "kvactor/future.hpp"

namespace kvactor::python {

namespace py = pybind11;

/// Objects that must stay alive until a call completes (inline: most calls lend one or two).
using keepalive = boost::container::small_vector<py::object, 2>;

/// An owned reference, released only explicitly under the GIL (see the header comment).
class py_ref {
 public:
  py_ref() = default;
  /// Takes a new reference to h; GIL held.
  explicit py_ref(py::handle h) : p_(h.inc_ref().ptr()) {}
  py_ref(const py_ref&) = delete;
  py_ref& operator=(const py_ref&) = delete;
  py_ref(py_ref&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  py_ref& operator=(py_ref&& o) = delete;
  ~py_ref() = default;  // a reference still held here leaks (no GIL may be held)

  py::handle get() const noexcept { return p_; }
  /// GIL held: drops the reference.
  void release() noexcept {
    if (p_) py::handle(p_).dec_ref();
    p_ = nullptr;
  }

 private:
  PyObject* p_ = nullptr;
};

/// GIL held: keeps `objects` alive until `done` is ready (then a later drain() drops them).
void park(std::shared_ptr<kvactor::detail::state_base> done, keepalive objects);
/// GIL held: drops the parked objects whose call has completed.
void drain();

/// Any thread. False once the module's atexit hook ran (see the header comment).
bool interpreter_alive() noexcept;

/// Any thread: runs job with the GIL held on the notifier thread, soon, unless the interpreter
/// is stopping (then the job is dropped unrun, and what it holds leaks). The job itself must
/// release every py_ref it holds (it runs under the GIL; its destruction may not).
void post_to_python(std::function<void()> job);

/// GIL held, from the atexit hook: stops the notifier (after the jobs already posted), marks
/// the interpreter as stopping, then drops every parked object whose call is done.
void stop_python_threads();

}  // namespace kvactor::python
