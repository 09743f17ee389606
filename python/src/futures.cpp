#include "futures.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "errors.hpp"
#include "fastcall.hpp"

namespace kvactor::python {

bool wait_interruptible(const kvactor::future<void>& f, std::optional<double> timeout) {
  if (f.ready()) return true;
  using clock = std::chrono::steady_clock;
  // Waits in slices, so a signal (Ctrl-C) is seen within one: the call itself goes on.
  constexpr std::chrono::milliseconds slice{100};
  const auto start = clock::now();
  double seconds = timeout.value_or(0.0);
  if (!(seconds > 0)) seconds = 0;   // negative or NaN: do not wait
  seconds = std::min(seconds, 1e9);  // about 30 years: no overflow below
  const auto limit =
      std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  for (;;) {
    auto step = std::chrono::duration_cast<clock::duration>(slice);
    if (timeout) step = std::min(step, limit - (clock::now() - start));
    bool done = false;
    {
      py::gil_scoped_release nogil;
      done = f.wait_for(std::max(step, clock::duration::zero()));
    }
    if (done) return true;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (timeout && clock::now() - start >= limit) return false;
  }
}

namespace {

// The instance: CPython's header, then C++ members constructed in place by make_future and
// destroyed by dealloc (tp_alloc hands out zeroed memory, never constructed objects).
struct future_object {
  PyObject_HEAD kvactor::future<void> f;
  keepalive keep;
};

PyTypeObject* future_type = nullptr;  // the class, made once by bind_futures

future_object* as_future(PyObject* self) {
  return reinterpret_cast<future_object*>(self);
}

void dealloc(PyObject* self) {
  auto* me = as_future(self);
  // Parks what the call still uses when the call is still running.
  if (!me->keep.empty() && !me->f.ready()) park(me->f.state_ptr(), std::move(me->keep));
  me->keep.~keepalive();
  me->f.~future();
  PyTypeObject* type = Py_TYPE(self);
  type->tp_free(self);
  Py_DECREF(type);  // a heap type's instances own a reference to it
}

[[noreturn]] void raise_wait_timeout(double timeout) {
  // The builtin TimeoutError, as concurrent.futures raises: the call is still running (a
  // kvactor.Timeout is the call's own failure).
  PyErr_SetString(PyExc_TimeoutError,
                  ("the call did not complete within " + std::to_string(timeout) + " s").c_str());
  throw py::error_already_set();
}

void result(const kvactor::future<void>& f, std::optional<double> timeout) {
  if (!wait_interruptible(f, timeout)) raise_wait_timeout(*timeout);
  const auto& s = f.get_status();
  if (!s.is_ok()) raise_status(s);
}

// Runs job(future object) on the notifier thread once f is ready. The Python objects travel
// as py_refs, which only the job (under the GIL) releases.
struct completion_job {
  completion_job(py::handle s, py::handle f) : self(s), fn(f) {}
  py_ref self;
  py_ref fn;
};

void when_done(const kvactor::future<void>& f, py::handle self, py::handle fn) {
  auto job = std::make_shared<completion_job>(self, fn);
  f.state_ptr()->mark_observed();  // the callback is handed the outcome
  f.state_ptr()->on_ready([job]() mutable {
    post_to_python([job = std::move(job)]() {
      py::handle fn = job->fn.get();
      py::handle self = job->self.get();
      try {
        fn(self);
      } catch (py::error_already_set&) {
        job->fn.release();
        job->self.release();
        throw;
      }
      job->fn.release();
      job->self.release();
    });
  });
}

// Completes a concurrent.futures.Future with the outcome of f.
void settle(py::handle concurrent, const kvactor::future<void>& f) {
  const auto& s = f.get_status();
  if (s.is_ok())
    concurrent.attr("set_result")(py::none());
  else
    concurrent.attr("set_exception")(make_exception(s));
}

py::object as_concurrent(PyObject* self) {
  py::object concurrent = py::module_::import("concurrent.futures").attr("Future")();
  concurrent.attr("set_running_or_notify_cancel")();
  const auto& f = as_future(self)->f;
  if (f.ready()) {
    settle(concurrent, f);
  } else {
    py::object settle_fn = py::cpp_function(
        [concurrent](const py::handle& done) { settle(concurrent, as_future(done.ptr())->f); });
    when_done(f, self, settle_fn);
  }
  return concurrent;
}

// The methods, in CPython's calling conventions (fastcall.hpp).

PyObject* done_method(PyObject* self, PyObject*) {
  return PyBool_FromLong(as_future(self)->f.ready() ? 1 : 0);
}

PyObject* wait_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  PyObject* a[1];
  if (!bind_args("wait", args, nargs, kw, {"timeout"}, 0, a)) return nullptr;
  return guarded(
      [&] { return py::bool_(wait_interruptible(as_future(self)->f, timeout_arg(a[0]))); });
}

PyObject* result_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  PyObject* a[1];
  if (!bind_args("result", args, nargs, kw, {"timeout"}, 0, a)) return nullptr;
  return guarded([&] {
    result(as_future(self)->f, timeout_arg(a[0]));
    return py::none();
  });
}

PyObject* exception_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  PyObject* a[1];
  if (!bind_args("exception", args, nargs, kw, {"timeout"}, 0, a)) return nullptr;
  return guarded([&]() -> py::object {
    const auto timeout = timeout_arg(a[0]);
    const auto& f = as_future(self)->f;
    if (!wait_interruptible(f, timeout)) raise_wait_timeout(*timeout);
    const auto& s = f.get_status();
    if (s.is_ok()) return py::none();
    return make_exception(s);
  });
}

PyObject* add_done_callback_method(PyObject* self, PyObject* fn) {
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "add_done_callback(fn): fn must be callable");
    return nullptr;
  }
  return guarded([&] {
    when_done(as_future(self)->f, self, fn);
    return py::none();
  });
}

PyObject* as_concurrent_method(PyObject* self, PyObject*) {
  return guarded([&] { return as_concurrent(self); });
}

PyObject* await_slot(PyObject* self) {
  return guarded([&] {
    py::object wrapped = py::module_::import("asyncio").attr("wrap_future")(as_concurrent(self));
    return wrapped.attr("__await__")();
  });
}

PyObject* repr_slot(PyObject* self) {
  const auto& f = as_future(self)->f;
  if (!f.ready()) return PyUnicode_FromString("<kvactor.Future pending>");
  const auto& s = f.get_status();
  if (s.is_ok()) return PyUnicode_FromString("<kvactor.Future done>");
  return PyUnicode_FromString(("<kvactor.Future failed: " + s.to_string() + ">").c_str());
}

// NOLINTBEGIN(cppcoreguidelines-avoid-c-arrays): CPython's tables are C arrays.
PyMethodDef methods[] = {
    {"done", done_method, METH_NOARGS,
     "done() -> bool: whether the call has completed (successfully or not)."},
    {"wait", cfunction(wait_method), METH_FASTCALL | METH_KEYWORDS,
     "wait(timeout=None) -> bool: blocks (the GIL released) until the call completes or "
     "timeout seconds passed; returns whether it completed. Raises nothing."},
    {"result", cfunction(result_method), METH_FASTCALL | METH_KEYWORDS,
     "result(timeout=None): waits, then returns None or raises the call's error (a "
     "kvactor.Error); the builtin TimeoutError when timeout seconds passed first."},
    {"exception", cfunction(exception_method), METH_FASTCALL | METH_KEYWORDS,
     "exception(timeout=None): waits, then returns the call's error (a kvactor.Error) or "
     "None."},
    {"add_done_callback", add_done_callback_method, METH_O,
     "add_done_callback(fn): calls fn(future) once the call has completed, on kvactor's "
     "notifier thread (a thread of its own, holding the GIL while fn runs; fn must not block "
     "for long). An exception fn raises is reported as unraisable."},
    {"as_concurrent", as_concurrent_method, METH_NOARGS,
     "as_concurrent(): a concurrent.futures.Future that completes with this call (for "
     "asyncio.wrap_future, executors' wait(), ...)."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(dealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(repr_slot)},
    {Py_tp_methods, methods},
    {Py_am_await, reinterpret_cast<void*>(await_slot)},
    {Py_tp_doc,
     const_cast<char*>("The result of a kvactor call. The arrays given to the call are the "
                       "store's until it is done: read a pull's output after wait() or "
                       "result().")},
    {0, nullptr}};
// NOLINTEND(cppcoreguidelines-avoid-c-arrays)

}  // namespace

py::object make_future(kvactor::future<void> f, keepalive keep) {
  drain();
  PyObject* obj = future_type->tp_alloc(future_type, 0);
  if (!obj) throw py::error_already_set();
  auto* me = as_future(obj);
  new (&me->f) kvactor::future<void>(std::move(f));
  new (&me->keep) keepalive(std::move(keep));
  return py::reinterpret_steal<py::object>(obj);
}

void future_result(py::handle future, std::optional<double> timeout) {
  result(as_future(future.ptr())->f, timeout);
}

void bind_futures(py::module_& m) {
  // Final (no subclasses): dealloc knows the layout, and nobody makes one from Python (no
  // tp_new: Future() raises TypeError).
  static PyType_Spec spec{"kvactor._kvactor.Future", sizeof(future_object), 0,
                          Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots};
  PyObject* type = PyType_FromSpec(&spec);
  if (!type) throw py::error_already_set();
  future_type = reinterpret_cast<PyTypeObject*>(type);
  m.add_object("Future", py::reinterpret_borrow<py::object>(type));
  // The module and this pointer share the class for the rest of the process.
}

}  // namespace kvactor::python
