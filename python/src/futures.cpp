#include "futures.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <pybind11/stl.h>

#include "errors.hpp"

namespace kvactor::python {

namespace {

// Waits with the GIL released; true when ready. A negative timeout waits not at all.
bool wait_released(const kvactor::future<void>& f, std::optional<double> timeout) {
  if (f.ready()) return true;
  py::gil_scoped_release nogil;
  if (!timeout) {
    f.wait();
    return true;
  }
  return f.wait_for(std::chrono::duration<double>(std::max(*timeout, 0.0)));
}

[[noreturn]] void raise_wait_timeout(double timeout) {
  // The builtin TimeoutError, as concurrent.futures raises: the call is still running (a
  // kvactor.Timeout is the call's own failure).
  PyErr_SetString(PyExc_TimeoutError,
                  ("the call did not complete within " + std::to_string(timeout) + " s").c_str());
  throw py::error_already_set();
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

// Completes a concurrent.futures.Future with the outcome of the kvactor.Future `self`.
void settle(py::handle concurrent, const py_future& self) {
  const auto& s = self.get().get_status();
  if (s.is_ok())
    concurrent.attr("set_result")(py::none());
  else
    concurrent.attr("set_exception")(make_exception(s));
}

}  // namespace

py_future::py_future(kvactor::future<void> f, keepalive keep)
    : f_(std::move(f)), keep_(std::move(keep)) {}

py_future::~py_future() {
  if (!keep_.empty() && !f_.ready()) park(f_.state_ptr(), std::move(keep_));
}

bool py_future::wait(std::optional<double> timeout) const {
  return wait_released(f_, timeout);
}

void py_future::result(std::optional<double> timeout) const {
  if (!wait_released(f_, timeout)) raise_wait_timeout(*timeout);
  const auto& s = f_.get_status();
  if (!s.is_ok()) raise_status(s);
}

py::object py_future::exception(std::optional<double> timeout) const {
  if (!wait_released(f_, timeout)) raise_wait_timeout(*timeout);
  const auto& s = f_.get_status();
  if (s.is_ok()) return py::none();
  return make_exception(s);
}

py::object make_future(kvactor::future<void> f, keepalive keep) {
  drain();
  return py::cast(std::make_unique<py_future>(std::move(f), std::move(keep)));
}

void bind_futures(py::module_& m) {
  py::class_<py_future>(m, "Future",
                        "The result of a kvactor call. The arrays given to the call are the "
                        "store's until it is done: read a pull's output after wait() or "
                        "result().")
      .def("done", &py_future::done, "Whether the call has completed (successfully or not).")
      .def("wait", &py_future::wait, py::arg("timeout") = py::none(),
           "Blocks (the GIL released) until the call completes or timeout seconds passed; "
           "returns whether it completed. Raises nothing.")
      .def("result", &py_future::result, py::arg("timeout") = py::none(),
           "Waits, then returns None or raises the call's error (a kvactor.Error); the "
           "builtin TimeoutError when timeout seconds passed first.")
      .def("exception", &py_future::exception, py::arg("timeout") = py::none(),
           "Waits, then returns the call's error (a kvactor.Error) or None.")
      .def(
          "add_done_callback",
          [](const py::object& self, const py::function& fn) {
            when_done(self.cast<const py_future&>().get(), self, fn);
          },
          py::arg("fn"),
          "Calls fn(future) once the call has completed, on kvactor's notifier thread (a "
          "thread of its own, holding the GIL while fn runs; fn must not block for long). An "
          "exception fn raises is reported as unraisable.")
      .def(
          "as_concurrent",
          [](const py::object& self) {
            py::object concurrent = py::module_::import("concurrent.futures").attr("Future")();
            concurrent.attr("set_running_or_notify_cancel")();
            const auto& me = self.cast<const py_future&>();
            if (me.done()) {
              settle(concurrent, me);
            } else {
              py::object settle_fn = py::cpp_function([concurrent](const py::object& done) {
                settle(concurrent, done.cast<const py_future&>());
              });
              when_done(me.get(), self, settle_fn);
            }
            return concurrent;
          },
          "A concurrent.futures.Future that completes with this call (for "
          "asyncio.wrap_future, executors' wait(), ...).")
      .def("__await__",
           [](const py::object& self) {
             py::object wrapped =
                 py::module_::import("asyncio").attr("wrap_future")(self.attr("as_concurrent")());
             return wrapped.attr("__await__")();
           })
      .def("__repr__", [](const py_future& f) {
        if (!f.done()) return std::string{"<kvactor.Future pending>"};
        const auto& s = f.get().state_ptr()->get_status();
        return s.is_ok() ? std::string{"<kvactor.Future done>"}
                         : "<kvactor.Future failed: " + s.to_string() + ">";
      });
}

}  // namespace kvactor::python
