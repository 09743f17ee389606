// The methods bound with CPython's own fast calling convention (METH_FASTCALL | METH_KEYWORDS)
// instead of pybind11's dispatcher: the calls a training loop makes per key and per step
// (push, pull, pushpull and their Future's wait/result/done). pybind11's dispatcher costs
// about 1,500 instructions a call, more than a 4-byte operation on an idle local shard; these
// helpers bind arguments and translate exceptions the way it does, for a few hundred.
// Thread-safety: GIL held for everything here.
#pragma once

#include <array>
#include <cstddef>
#include <exception>
#include <initializer_list>
#include <optional>

#include <pybind11/pybind11.h>

namespace kvactor::python {

namespace py = pybind11;

/// Sets the Python error for the exception being handled, through pybind11's translators in
/// the order its dispatcher tries them (so a method bound here raises what a pybind11-bound
/// one would: kvactor's classes, TypeError, ...). Call from a catch block.
void set_python_error() noexcept;

/// Runs fn() (returning a py::object) and hands its result to CPython as a new reference, or
/// nullptr with the Python error set when it threw.
template <class Fn>
PyObject* guarded(Fn&& fn) noexcept {
  try {
    return fn().release().ptr();
  } catch (...) {
    set_python_error();
    return nullptr;
  }
}

/// Binds a fast call's arguments to N parameters by position or keyword: out[i] is the
/// argument for names[i] (borrowed), or nullptr when not given. The first `required` are
/// required. Raises TypeError (returns false) as Python does for too many, unknown, repeated or
/// missing arguments; `fn` names the function in the message.
bool bind_args(const char* fn, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
               std::initializer_list<const char*> names, std::size_t required, PyObject** out);

/// A METH_FASTCALL | METH_KEYWORDS method, and the type PyMethodDef stores it as.
using fast_method = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);
inline PyCFunction cfunction(fast_method m) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(m));
}

/// Releases the GIL for its scope with CPython's PyEval_SaveThread/RestoreThread alone, for a
/// call that may complete in well under a microsecond: py::gil_scoped_release also updates
/// pybind11's own record of thread states, which nothing needs here (a gil_scoped_acquire on
/// this thread meanwhile, as an updater run inline does, finds the state through PyGILState).
class without_gil {
 public:
  without_gil() noexcept : state_(PyEval_SaveThread()) {}
  without_gil(const without_gil&) = delete;
  without_gil& operator=(const without_gil&) = delete;
  ~without_gil() { PyEval_RestoreThread(state_); }

 private:
  PyThreadState* state_;
};

/// A timeout argument: None (or absent) is no limit, else a number of seconds.
std::optional<double> timeout_arg(PyObject* obj);

/// Adds a method (def: static storage, METH_FASTCALL | METH_KEYWORDS or another CPython flag)
/// to a class pybind11 made, replacing any of that name.
void add_method(py::handle cls, PyMethodDef* def);

}  // namespace kvactor::python
